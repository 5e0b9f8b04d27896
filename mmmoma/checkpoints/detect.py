"""Tell a checkpoint's format and read checkpoint files, naming the file.

Recognised checkpoint formats (:func:`detect_checkpoint_format`):

``'mae'``
    The official MAE release (``mae_pretrain_vit_{base,large,huge}.pth``):
    ``{'model': {timm ViT keys}}``. Any ``{'model': ...}`` file with timm ViT
    keys is read the same way (MAE ``*_full.pth`` / visualisation files, MAE
    fine-tuned models, the output of MoCo v3's ``convert_to_deit.py``).
``'mocov3'``
    The official MoCo v3 release (``vit-{s,b}-300ep.pth.tar``):
    ``{'state_dict': {'module.base_encoder.*', 'module.momentum_encoder.*',
    'module.predictor.*'}, ...}``. The encoder is ``module.base_encoder.*``
    without its projector ``head.*``. Both are read with timm ViT names
    (:mod:`.timm_vit`).
``'moby'``
    The official MoBY release of SwinTransformer/Transformer-SSL
    (``moby_swin_t_{100,300}ep_pretrained.pth``): ``{'model': {'encoder.*',
    'encoder_k.*', 'projector.*', 'projector_k.*', 'predictor.*', 'queue1',
    'queue2', 'queue_ptr'}}``. The encoder is the online Swin
    ``encoder.*``; the rest is dropped and reported (:mod:`.moby`). Its
    official Swin names are mapped to mmpretrain ``SwinTransformer`` names
    (:mod:`.swin`).
``'mmpretrain'``
    A training checkpoint of mmpretrain / mmmoma:
    ``{'state_dict': {'backbone.*', 'neck.*', 'head.*', ...}, 'meta': ...}``.
    A sub-module is taken by key prefix (``'backbone.'`` by default).
``'backbone'``
    A backbone-only file written by our converters
    (``tools/model_converters/*.py``): ``{'state_dict': {mmpretrain
    backbone keys (VisionTransformer, SwinTransformer)}, 'meta':
    {'checkpoint_format': 'backbone', ...}}``.

Errors:
    :class:`CheckpointFormatError` (a ``ValueError``): the file is not in a
    recognised format, cannot be read, or holds keys that cannot be mapped
    (raised by the converters too). Read from a file, the message names it
    (:func:`load_checkpoint_file`, :func:`naming_file`).
"""
import os
import pickle
import zipfile
from collections import OrderedDict
from contextlib import contextmanager
from pathlib import Path
from typing import Dict, Iterator, Mapping, Union

import torch

from .keys import format_keys

__all__ = [
    'CHECKPOINT_FORMATS', 'CheckpointFormatError', 'detect_checkpoint_format',
    'load_checkpoint_file', 'naming_file'
]

#: Formats :func:`detect_checkpoint_format` recognises, with their layout.
CHECKPOINT_FORMATS: Dict[str, str] = OrderedDict(
    mae="official MAE release: {'model': {timm ViT keys}}",
    mocov3="official MoCo v3 release: {'state_dict': "
    "{'module.base_encoder.*', 'module.momentum_encoder.*', "
    "'module.predictor.*'}}",
    moby="official MoBY release (Transformer-SSL): {'model': "
    "{'encoder.*' (Swin), 'encoder_k.*', 'projector.*', 'projector_k.*', "
    "'predictor.*', 'queue1', 'queue2', 'queue_ptr'}}",
    mmpretrain="mmpretrain / mmmoma training checkpoint: "
    "{'state_dict': {'backbone.*', 'neck.*', 'head.*', ...}}",
    backbone="backbone-only file of tools/model_converters: "
    "{'state_dict': {mmpretrain backbone keys}}",
)

#: Key of ``meta`` that marks a backbone-only file (value ``'backbone'``).
BACKBONE_META_KEY = 'checkpoint_format'
#: The online encoder of a MoCo v3 release's ``'state_dict'``.
MOCOV3_ENCODER_PREFIX = 'module.base_encoder.'
#: The online encoder of a MoBY release's ``'model'``.
MOBY_ENCODER_PREFIX = 'encoder.'

# First bytes of what torch.save writes: a zip archive (PyTorch >= 1.6) or a
# legacy pickle (protocol >= 2 opcode); failures to load other files mean
# "not a PyTorch checkpoint", failures to load these "truncated/corrupted".
_TORCH_FILE_MAGIC = (b'PK\x03\x04', b'\x80')
_HEAD_BYTES = 16
# What torch.load raises for files it cannot read (zip reader: RuntimeError;
# legacy reader: EOFError, KeyError, ValueError, UnpicklingError, ...).
_LOAD_ERRORS = (RuntimeError, EOFError, KeyError, IndexError, ValueError,
                zipfile.BadZipFile, pickle.UnpicklingError)


class CheckpointFormatError(ValueError):
    """A checkpoint is in no recognised format or has keys we cannot map."""


def _looks_like_moby_swin(model: Mapping[str, object]) -> bool:
    return (MOBY_ENCODER_PREFIX + 'patch_embed.proj.weight' in model
            and any(
                key.startswith(MOBY_ENCODER_PREFIX + 'layers.')
                for key in model))


def _looks_like_timm_vit(state_dict: Mapping[str, object]) -> bool:
    return 'patch_embed.proj.weight' in state_dict


def detect_checkpoint_format(checkpoint: Mapping[str, object]) -> str:
    """Tell which of :data:`CHECKPOINT_FORMATS` a loaded checkpoint is.

    Args:
        checkpoint (dict): the object ``torch.load`` returned.

    Returns:
        str: ``'mae'``, ``'mocov3'``, ``'moby'``, ``'mmpretrain'`` or
        ``'backbone'``.

    Raises:
        CheckpointFormatError: none of them; the message lists the recognised
            formats and what the checkpoint holds.
    """
    if isinstance(checkpoint, Mapping):
        model = checkpoint.get('model')
        if isinstance(model, Mapping) and _looks_like_moby_swin(model):
            return 'moby'
        if isinstance(model, Mapping) and _looks_like_timm_vit(model):
            return 'mae'
        state_dict = checkpoint.get('state_dict')
        if isinstance(state_dict, Mapping):
            keys = list(state_dict.keys())
            meta = checkpoint.get('meta')
            if any(key.startswith(MOCOV3_ENCODER_PREFIX) for key in keys):
                return 'mocov3'
            if (isinstance(meta, Mapping)
                    and meta.get(BACKBONE_META_KEY) == 'backbone'):
                return 'backbone'
            if 'patch_embed.projection.weight' in state_dict:
                return 'backbone'
            if any(key.startswith('backbone.') for key in keys):
                return 'mmpretrain'
        top_level = format_keys(list(checkpoint.keys()))
        inner = state_dict if isinstance(state_dict, Mapping) else model
        inner_keys = (f'; its first keys: {format_keys(list(inner)[:5])}'
                      if isinstance(inner, Mapping) else '')
        found = f'a dict with keys {top_level}{inner_keys}'
    else:
        found = f'an object of type {type(checkpoint).__name__}'
    recognised = '; '.join(f'{name!r} ({layout})'
                           for name, layout in CHECKPOINT_FORMATS.items())
    raise CheckpointFormatError(
        f'Unrecognised checkpoint format: got {found}. Recognised formats: '
        f'{recognised}.')


def _unreadable_checkpoint(path: Path, err: BaseException) -> str:
    """Message for a file that ``torch.load`` cannot read: its path, what it
    likely is (judged from its size and first bytes) and the original
    error."""
    size = path.stat().st_size
    with open(path, 'rb') as file:
        head = file.read(_HEAD_BYTES)
    if size == 0:
        likely = ('it is empty (0 bytes): likely an interrupted download or '
                  'copy; download or copy it again')
    elif head.startswith(_TORCH_FILE_MAGIC):
        likely = (f'it starts like a PyTorch checkpoint but cannot be read '
                  f'({size} bytes): likely truncated (an interrupted '
                  f'download or copy) or corrupted; download or copy it '
                  f'again')
    else:
        likely = (f'it does not start like a PyTorch checkpoint (the zip '
                  f'archive of torch.save, or a legacy pickle; its first '
                  f'bytes: {head!r}): it is likely not a PyTorch checkpoint '
                  f'(e.g. a text, HTML or numpy file named .pth)')
    return (f'Cannot load checkpoint {str(path)!r}: {likely}. Original '
            f'error: {type(err).__name__}: {err}')


def load_checkpoint_file(
        path: Union[str, os.PathLike],
        map_location: Union[str, torch.device] = 'cpu') -> dict:
    """``torch.load`` a checkpoint safely (``weights_only=True``).

    mmengine training checkpoints also pickle ``HistoryBuffer`` and numpy
    objects; importing :mod:`mmmoma` allow-lists them (``mmmoma.compat``).

    Args:
        path (str | PathLike): checkpoint file.
        map_location (str | torch.device): where to put the tensors.

    Returns:
        dict: the loaded checkpoint.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        pickle.UnpicklingError: the file holds objects outside the safe set.
        CheckpointFormatError: ``torch.load`` cannot read the file (empty,
            truncated or corrupted, or not a PyTorch checkpoint at all); the
            message names the path and the likely cause, and the original
            error is chained.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'Checkpoint file not found: {str(path)!r}')
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        with open(path, 'rb') as file:
            head = file.read(_HEAD_BYTES)
        if (not head.startswith(_TORCH_FILE_MAGIC)
                or 'Unsupported operand' in str(err)):
            # not a pickle stream of torch.save: garbage, not unsafe objects
            raise CheckpointFormatError(_unreadable_checkpoint(path,
                                                               err)) from err
        raise pickle.UnpicklingError(
            f'Cannot load {str(path)!r} with torch.load(weights_only=True): '
            f'it pickles objects outside the allowed set (mmengine training '
            f'checkpoints need `import mmmoma` first). If you trust the file, '
            f're-save only its tensors. Original error: {err}') from err
    except _LOAD_ERRORS as err:
        raise CheckpointFormatError(_unreadable_checkpoint(path,
                                                           err)) from err


@contextmanager
def naming_file(path: Union[str, os.PathLike]) -> Iterator[None]:
    """Re-raise a :class:`CheckpointFormatError` with the file's path.

    Args:
        path (str | PathLike): the file being read; put before the message.
    """
    try:
        yield
    except CheckpointFormatError as err:
        raise CheckpointFormatError(
            f'Checkpoint {str(path)!r}: {err}') from err
