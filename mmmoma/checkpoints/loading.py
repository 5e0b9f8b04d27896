"""Load a backbone's weights strictly, from a checkpoint of any format.

:func:`load_backbone_state_dict` reads the backbone of any of
:data:`.detect.CHECKPOINT_FORMATS` (converting timm / MoBY names on the way),
:func:`load_state_dict_strict` loads a state dict into a module and fails
loudly on any mismatch, :func:`load_backbone_weights` does both: the one path
by which frozen teachers, ``StrictPretrained`` and ``tools/knn_eval.py``
load pre-trained weights.

Errors:
    :class:`CheckpointMismatchError` (a ``RuntimeError``): the state dict does
    not fit the module it is loaded into (missing, unexpected or
    size-mismatched keys); the message names them (the first 20 of each
    kind, with a count of the rest; all are in its attributes).
    :class:`.detect.CheckpointFormatError`: see :mod:`.detect`.
"""
import fnmatch
import os
from collections import OrderedDict
from typing import Dict, List, Mapping, Optional, Sequence, Union

import torch
from mmengine.logging import print_log
from torch import Tensor, nn

from .detect import (MOCOV3_ENCODER_PREFIX, CheckpointFormatError,
                     detect_checkpoint_format, load_checkpoint_file,
                     naming_file)
from .keys import format_keys, iter_keys
from .moby import moby_to_mmpretrain
from .timm_vit import timm_vit_to_mmpretrain

__all__ = [
    'PRETRAINING_ONLY_BACKBONE_KEYS', 'CheckpointMismatchError',
    'with_context', 'load_backbone_state_dict', 'load_state_dict_strict',
    'load_backbone_weights'
]

# Backbone parameters used only in masked pre-training (SimMIM's mask token);
# a fine-tuning backbone without them loads the rest strictly.
PRETRAINING_ONLY_BACKBONE_KEYS = ('mask_token', )


class CheckpointMismatchError(RuntimeError):
    """A state dict does not fit the module it is loaded into.

    Attributes:
        missing_keys (list[str]): module keys the state dict lacks (beyond the
            allowed ones).
        unexpected_keys (list[str]): state-dict keys the module does not have.
    """

    def __init__(
        self,
        message: str,
        missing_keys: Sequence[str] = (),
        unexpected_keys: Sequence[str] = ()
    ) -> None:
        super().__init__(message)
        self.missing_keys = list(missing_keys)
        self.unexpected_keys = list(unexpected_keys)


def with_context(err: BaseException, context: str) -> BaseException:
    """A copy of ``err``, of the same type, with ``context`` prefixed.

    For callers that know more than the loader, e.g. the config key of a
    teacher's checkpoint; raise the copy ``from err``. A
    :class:`CheckpointMismatchError` keeps its key lists.

    Args:
        err (BaseException): a checkpoint error (format, mismatch, missing
            file, unsafe pickle).
        context (str): text put before the original message.

    Returns:
        BaseException: the new exception.
    """
    message = f'{context}{err}'
    if isinstance(err, CheckpointMismatchError):
        return type(err)(message, err.missing_keys, err.unexpected_keys)
    return type(err)(message)


def _take_prefix(state_dict: Mapping[str, Tensor], prefix: str,
                 show_progress: bool) -> 'OrderedDict':
    """The keys of ``state_dict`` under ``prefix``, with it removed.

    Raises:
        CheckpointFormatError: no key starts with ``prefix``; the message
            names the prefixes there are.
    """
    taken: 'OrderedDict[str, Tensor]' = OrderedDict()
    for key in iter_keys(state_dict.keys(), show_progress):
        if key.startswith(prefix):
            taken[key[len(prefix):]] = state_dict[key]
    if not taken:
        first_parts = sorted(
            {key.split('.', 1)[0] + '.'
             for key in state_dict})
        raise CheckpointFormatError(
            f'No key of the checkpoint starts with prefix={prefix!r}; its '
            f'keys start with {format_keys(first_parts)}.')
    return taken


def load_backbone_state_dict(path_or_checkpoint: Union[str, os.PathLike,
                                                       Mapping],
                             prefix: str = 'backbone.',
                             map_location: Union[str, torch.device] = 'cpu',
                             *,
                             show_progress: bool = False) -> 'OrderedDict':
    """Read a backbone from any of :data:`.detect.CHECKPOINT_FORMATS`.

    Args:
        path_or_checkpoint (str | PathLike | dict): checkpoint file, or a
            checkpoint already loaded with ``torch.load``.
        prefix (str): sub-module taken from an ``'mmpretrain'`` training
            checkpoint (``'backbone.'``; ``'teacher.'`` for an EMA teacher);
            removed from the keys. Unused for the other formats.
        map_location (str | torch.device): passed to ``torch.load`` (unused
            when a loaded checkpoint is given).
        show_progress (bool): show a progress bar over the keys.

    Returns:
        OrderedDict[str, Tensor]: mmpretrain ``VisionTransformer`` keys
        (``'mae'``, ``'mocov3'``) or ``SwinTransformer`` keys (``'moby'``),
        without prefix (for ``'mmpretrain'`` / ``'backbone'`` files: the keys
        of whatever backbone was saved).

    Raises:
        FileNotFoundError: the file does not exist.
        CheckpointFormatError: unreadable file, unrecognised format,
            unmappable timm / Swin / MoBY keys, or no key with ``prefix``
            (read from a file: the message names its path).
        ValueError: ``prefix`` does not end in ``'.'``.
    """
    if not (isinstance(prefix, str) and prefix.endswith('.')):
        raise ValueError(f"prefix must be a module prefix ending in '.', "
                         f"e.g. 'backbone.' or 'teacher.', got {prefix!r}")
    if isinstance(path_or_checkpoint, Mapping):
        return _backbone_state_dict(path_or_checkpoint, prefix, show_progress)
    checkpoint = load_checkpoint_file(path_or_checkpoint, map_location)
    with naming_file(path_or_checkpoint):
        return _backbone_state_dict(checkpoint, prefix, show_progress)


def _backbone_state_dict(checkpoint: Mapping, prefix: str,
                         show_progress: bool) -> 'OrderedDict':
    """:func:`load_backbone_state_dict` of a loaded checkpoint."""
    checkpoint_format = detect_checkpoint_format(checkpoint)
    if checkpoint_format == 'mae':
        return timm_vit_to_mmpretrain(
            checkpoint['model'], show_progress=show_progress)
    if checkpoint_format == 'moby':
        return moby_to_mmpretrain(
            checkpoint['model'], show_progress=show_progress)
    state_dict = checkpoint['state_dict']
    if checkpoint_format == 'mocov3':
        encoder = _take_prefix(state_dict, MOCOV3_ENCODER_PREFIX,
                               show_progress)
        num_ignored = len(state_dict) - len(encoder)
        print_log(
            f'MoCo v3 checkpoint: reading {MOCOV3_ENCODER_PREFIX}*, ignoring '
            f'{num_ignored} key(s) of the momentum encoder and predictor',
            logger='current')
        return timm_vit_to_mmpretrain(encoder)
    if checkpoint_format == 'mmpretrain':
        return _take_prefix(state_dict, prefix, show_progress)
    # 'backbone'
    return OrderedDict((key, state_dict[key])
                       for key in iter_keys(state_dict.keys(), show_progress))


def load_state_dict_strict(module: nn.Module,
                           state_dict: Mapping[str, Tensor],
                           allowed_missing: Sequence[str] = (),
                           name: str = 'model') -> int:
    """Load ``state_dict`` into ``module``; fail loudly on any mismatch.

    Goes through ``module.load_state_dict`` so that the module's load hooks
    run (mmpretrain ``VisionTransformer`` resizes ``pos_embed`` of another
    grid size in its ``_prepare_pos_embed`` pre-hook). ``state_dict`` itself
    is not modified.

    Args:
        module (nn.Module): the module to load into.
        state_dict (Mapping[str, Tensor]): keys of ``module``, no prefix.
        allowed_missing (Sequence[str]): fnmatch patterns of module keys that
            the state dict may lack (e.g. ``('ln2.*',)``).
        name (str): what is being loaded, for messages.

    Returns:
        int: number of module keys loaded.

    Raises:
        CheckpointMismatchError: keys are missing (beyond
            ``allowed_missing``), unexpected, or of the wrong size; the
            message names them (missing / unexpected: the first 20, then a
            count; all in the error's attributes). The module may then be
            partially loaded.
    """
    if isinstance(allowed_missing, str):
        allowed_missing = (allowed_missing, )
    incompatible: Dict[str, List[str]] = dict(missing=[], unexpected=[])

    def record_incompatible_keys(_module: nn.Module, keys) -> None:
        # The root module's post hook runs last and sees all of them.
        incompatible['missing'] = list(keys.missing_keys)
        incompatible['unexpected'] = list(keys.unexpected_keys)

    handle = module.register_load_state_dict_post_hook(
        record_incompatible_keys)
    load_error: Optional[str] = None
    try:
        # strict=False: missing / unexpected keys are checked below, after
        # filtering by ``allowed_missing``; size mismatches still raise.
        module.load_state_dict(state_dict, strict=False)
    except RuntimeError as err:
        load_error = str(err)
    finally:
        handle.remove()

    missing = incompatible['missing']
    not_allowed = [
        key for key in missing if not any(
            fnmatch.fnmatchcase(key, pattern) for pattern in allowed_missing)
    ]
    unexpected = incompatible['unexpected']
    if not_allowed or unexpected or load_error:
        problems = []
        if not_allowed:
            problems.append(f'{len(not_allowed)} missing key(s): '
                            f'{format_keys(not_allowed)}')
        if unexpected:
            problems.append(f'{len(unexpected)} unexpected key(s): '
                            f'{format_keys(unexpected)}')
        if load_error:
            problems.append(load_error)
        raise CheckpointMismatchError(
            f'Checkpoint does not fit {name} ({type(module).__name__}): ' +
            '; '.join(problems), not_allowed, unexpected)

    num_expected = len(module.state_dict())
    num_loaded = num_expected - len(missing)
    message = f'{name}: loaded {num_loaded}/{num_expected} keys'
    if missing:
        message += (f' ({len(missing)} missing, allowed by '
                    f'{list(allowed_missing)}: {format_keys(missing)})')
    print_log(message, logger='current')
    return num_loaded


def load_backbone_weights(module: nn.Module,
                          checkpoint: Union[str, os.PathLike],
                          prefix: str = 'backbone.',
                          allowed_missing: Sequence[str] = (),
                          name: Optional[str] = None) -> int:
    """Read a backbone from ``checkpoint`` (any format) and load it strictly.

    :func:`load_backbone_state_dict` followed by
    :func:`load_state_dict_strict`; the one path by which frozen teachers,
    ``StrictPretrained`` and ``tools/knn_eval.py`` load pre-trained weights.

    Args:
        module (nn.Module): the backbone to load into.
        checkpoint (str | PathLike): file in any recognised format.
        prefix (str): sub-module of a training checkpoint to take.
        allowed_missing (Sequence[str]): fnmatch patterns of module keys the
            checkpoint may lack.
        name (str, optional): what is loaded, for messages; defaults to
            ``'<module class> from <checkpoint>'`` (``' from <checkpoint>'``
            is appended to a name that does not hold the path).

    Pre-training-only backbone parameters that ``module`` does not have
    (:data:`PRETRAINING_ONLY_BACKBONE_KEYS`, e.g. the ``mask_token`` of a
    ``SimMIMViT`` / ``SimMIMSwinTransformer`` student loaded into a plain
    ViT / Swin for fine-tuning) are dropped and logged by name; every other
    key must match.

    Returns:
        int: number of tensors loaded.
    """
    state_dict = load_backbone_state_dict(checkpoint, prefix=prefix)
    label = name or type(module).__name__
    if str(checkpoint) not in label:  # mismatch messages name the file
        label = f'{label} from {checkpoint}'
    expected = module.state_dict()
    dropped = [
        key for key in state_dict
        if key in PRETRAINING_ONLY_BACKBONE_KEYS and key not in expected
    ]
    if dropped:
        for key in dropped:
            del state_dict[key]
        print_log(
            f'{label}: dropped pre-training-only '
            f'key(s) the module does not have: {format_keys(dropped)}',
            logger='current')
    return load_state_dict_strict(
        module, state_dict, allowed_missing=allowed_missing, name=label)
