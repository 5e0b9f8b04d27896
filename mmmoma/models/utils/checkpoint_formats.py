"""Read ViT / Swin checkpoints in the formats mmmoma meets; load them strictly.

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
    without its projector ``head.*``.
``'moby'``
    The official MoBY release of SwinTransformer/Transformer-SSL
    (``moby_swin_t_{100,300}ep_pretrained.pth``): ``{'model': {'encoder.*',
    'encoder_k.*', 'projector.*', 'projector_k.*', 'predictor.*', 'queue1',
    'queue2', 'queue_ptr'}}``. The encoder is the online Swin
    ``encoder.*``; the rest (:data:`MOBY_NON_ENCODER_KEY_PATTERNS`) is dropped
    and reported. Its official Swin names are mapped to mmpretrain
    ``SwinTransformer`` names by :func:`swin_to_mmpretrain` (table below).
``'mmpretrain'``
    A training checkpoint of mmpretrain / mmmoma:
    ``{'state_dict': {'backbone.*', 'neck.*', 'head.*', ...}, 'meta': ...}``.
    A sub-module is taken by key prefix (``'backbone.'`` by default).
``'backbone'``
    A backbone-only file written by our converters
    (``tools/model_converters/*.py``): ``{'state_dict': {mmpretrain
    backbone keys (VisionTransformer, SwinTransformer)}, 'meta':
    {'checkpoint_format': 'backbone', ...}}``.

timm naming (both releases) is mapped to mmpretrain ``VisionTransformer``
naming by :func:`timm_vit_to_mmpretrain`:

============================  =========================================
timm                          mmpretrain ``VisionTransformer``
============================  =========================================
``cls_token``, ``pos_embed``  unchanged
``patch_embed.proj.*``        ``patch_embed.projection.*``
``blocks.i.norm1.*``          ``layers.i.ln1.*``
``blocks.i.attn.qkv.*``       ``layers.i.attn.qkv.*``
``blocks.i.attn.proj.*``      ``layers.i.attn.proj.*``
``blocks.i.ls1.gamma``        ``layers.i.attn.gamma1.weight``
``blocks.i.norm2.*``          ``layers.i.ln2.*``
``blocks.i.mlp.fc1.*``        ``layers.i.ffn.layers.0.0.*``
``blocks.i.mlp.fc2.*``        ``layers.i.ffn.layers.1.*``
``blocks.i.ls2.gamma``        ``layers.i.ffn.gamma2.weight``
``norm.*`` (final norm)       ``ln1.*``
``fc_norm.*`` (pooled norm)   ``ln2.*`` (``out_type='avg_featmap'``)
============================  =========================================

Keys of :data:`NON_ENCODER_KEY_PATTERNS` (MAE mask token and decoder,
classifier heads / the MoCo v3 projector) are dropped and reported through
the logger; any other key raises :class:`CheckpointFormatError` naming it.

Official Swin naming (Microsoft Swin-Transformer / Transformer-SSL; the
downsampling ``PatchMerging`` closes stage ``i``) is mapped to mmpretrain
``SwinTransformer`` / ``SimMIMSwinTransformer`` naming by
:func:`swin_to_mmpretrain`, with ``B = layers.i.blocks.j.`` (official),
``M = stages.i.blocks.j.`` (mmpretrain) and ``S`` the last stage:

====================================  =====================================
official Swin                         mmpretrain ``SwinTransformer``
====================================  =====================================
``patch_embed.proj.*``                ``patch_embed.projection.*``
``patch_embed.norm.*``                ``patch_embed.norm.*``
``absolute_pos_embed`` (APE)          ``absolute_pos_embed``
``B norm1.*``, ``B norm2.*``          ``M norm1.*``, ``M norm2.*``
``B attn.qkv.*``, ``B attn.proj.*``   ``M attn.w_msa.qkv.*``, ``...proj.*``
``B attn.relative_position_*``        ``M attn.w_msa.relative_position_*``
``B mlp.fc1.*``                       ``M ffn.layers.0.0.*``
``B mlp.fc2.*``                       ``M ffn.layers.1.*``
``layers.i.downsample.reduction.*``   ``stages.i.downsample.reduction.*``
``layers.i.downsample.norm.*``        ``stages.i.downsample.norm.*``
``norm.*`` (final norm)               ``normS.*`` (``out_indices`` holds S)
``B attn_mask``, ``head.*``           dropped and reported
====================================  =====================================

``relative_position_index`` is a deterministic buffer: it is rebuilt from the
window size (:func:`swin_relative_position_index`), and an index stored in
the checkpoint must equal it. ``attn_mask`` buffers are dropped (mmpretrain
builds the masks in ``forward``).

The official ``PatchMerging`` concatenates the 2x2 neighbours of a pixel as
``[x(0::2, 0::2), x(1::2, 0::2), x(0::2, 1::2), x(1::2, 1::2)]`` (position
major, channel minor: feature ``(dy + 2 * dx) * C + c`` for row offset
``dy`` and column offset ``dx``), mmcv's (``nn.Unfold``) as channel major,
kernel position minor (feature ``c * 4 + dy * 2 + dx``); the merge norm and
the input columns of the reduction are permuted accordingly
(:func:`swin_merge_to_unfold_order`).

Errors:
    :class:`CheckpointFormatError` (a ``ValueError``): the file is not in a
    recognised format, or holds keys that cannot be mapped.
    :class:`CheckpointMismatchError` (a ``RuntimeError``): the state dict does
    not fit the module it is loaded into (missing, unexpected or
    size-mismatched keys); the message names them (the first 20 of each
    kind, with a count of the rest; all are in its attributes).
"""
import fnmatch
import os
import pickle
import re
import zipfile
from collections import OrderedDict
from contextlib import contextmanager
from pathlib import Path
from typing import (Dict, Iterable, Iterator, List, Mapping, Optional,
                    Sequence, Tuple, Union)

import torch
from mmengine.logging import print_log
from mmengine.utils import ProgressBar
from torch import Tensor, nn

__all__ = [
    'CHECKPOINT_FORMATS', 'NON_ENCODER_KEY_PATTERNS',
    'MOBY_NON_ENCODER_KEY_PATTERNS', 'SWIN_DROPPED_KEY_PATTERNS',
    'CheckpointFormatError', 'CheckpointMismatchError',
    'timm_vit_to_mmpretrain', 'swin_to_mmpretrain',
    'swin_merge_to_unfold_order', 'swin_relative_position_index',
    'detect_checkpoint_format', 'load_checkpoint_file',
    'load_backbone_state_dict', 'load_state_dict_strict',
    'load_backbone_weights', 'with_context',
    'save_backbone_checkpoint', 'convert_to_backbone_checkpoint'
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

#: timm-named keys that are not part of the ViT encoder. They are dropped by
#: :func:`timm_vit_to_mmpretrain` (and reported), never mapped.
NON_ENCODER_KEY_PATTERNS: Dict[str, str] = OrderedDict([
    ('mask_token', 'MAE mask token (decoder input)'),
    ('decoder_*', 'MAE decoder (decoder_embed, decoder_blocks, '
     'decoder_norm, decoder_pred, decoder_pos_embed)'),
    ('head.*', 'classifier head (timm / MAE fine-tuning) or MoCo v3 '
     'projector'),
])

#: Keys of a MoBY release's ``'model'`` besides the online encoder
#: ``encoder.*``. Dropped by :func:`load_backbone_state_dict` (and reported).
MOBY_NON_ENCODER_KEY_PATTERNS: Dict[str, str] = OrderedDict([
    ('encoder_k.*', 'MoBY momentum (target) encoder'),
    ('projector.*', 'MoBY online projector'),
    ('projector_k.*', 'MoBY momentum projector'),
    ('predictor.*', 'MoBY predictor'),
    ('queue*', 'MoBY key queues and pointer (queue1, queue2, queue_ptr)'),
])

#: Official-Swin-named keys that mmpretrain's ``SwinTransformer`` does not
#: store. Dropped by :func:`swin_to_mmpretrain` (and reported).
SWIN_DROPPED_KEY_PATTERNS: Dict[str, str] = OrderedDict([
    ('layers.*.blocks.*.attn_mask', 'shifted-window attention masks '
     '(deterministic buffers; mmpretrain builds them in forward)'),
    ('head.*', 'classifier head'),
])

# Marker written into ``meta`` of backbone-only files.
# Backbone parameters used only in masked pre-training (SimMIM's mask token);
# a fine-tuning backbone without them loads the rest strictly.
PRETRAINING_ONLY_BACKBONE_KEYS = ('mask_token', )

_BACKBONE_META_KEY = 'checkpoint_format'

# timm key -> mmpretrain VisionTransformer key (re.fullmatch, re.sub syntax).
_TIMM_TO_MMPRETRAIN_RULES: Tuple[Tuple['re.Pattern', str], ...] = tuple(
    (re.compile(pattern), replacement) for pattern, replacement in (
        (r'cls_token', 'cls_token'),
        (r'pos_embed', 'pos_embed'),
        (r'patch_embed\.proj\.(weight|bias)', r'patch_embed.projection.\1'),
        (r'blocks\.(\d+)\.norm1\.(weight|bias)', r'layers.\1.ln1.\2'),
        (r'blocks\.(\d+)\.attn\.(qkv|proj)\.(weight|bias)',
         r'layers.\1.attn.\2.\3'),
        (r'blocks\.(\d+)\.ls1\.gamma', r'layers.\1.attn.gamma1.weight'),
        (r'blocks\.(\d+)\.norm2\.(weight|bias)', r'layers.\1.ln2.\2'),
        (r'blocks\.(\d+)\.mlp\.fc1\.(weight|bias)',
         r'layers.\1.ffn.layers.0.0.\2'),
        (r'blocks\.(\d+)\.mlp\.fc2\.(weight|bias)',
         r'layers.\1.ffn.layers.1.\2'),
        (r'blocks\.(\d+)\.ls2\.gamma', r'layers.\1.ffn.gamma2.weight'),
        (r'norm\.(weight|bias)', r'ln1.\1'),
        (r'fc_norm\.(weight|bias)', r'ln2.\1'),
    ))

# Official Swin key -> mmpretrain SwinTransformer key (re.fullmatch).
_SWIN_BLOCK = r'layers\.(\d+)\.blocks\.(\d+)\.'
_MM_BLOCK = r'stages.\1.blocks.\2.'
_SWIN_TO_MMPRETRAIN_RULES: Tuple[Tuple['re.Pattern', str], ...] = tuple(
    (re.compile(pattern), replacement) for pattern, replacement in (
        (r'patch_embed\.proj\.(weight|bias)', r'patch_embed.projection.\1'),
        (r'patch_embed\.norm\.(weight|bias)', r'patch_embed.norm.\1'),
        (r'absolute_pos_embed', 'absolute_pos_embed'),
        (_SWIN_BLOCK + r'(norm1|norm2)\.(weight|bias)',
         _MM_BLOCK + r'\3.\4'),
        (_SWIN_BLOCK + r'attn\.(qkv|proj)\.(weight|bias)',
         _MM_BLOCK + r'attn.w_msa.\3.\4'),
        (_SWIN_BLOCK + r'attn\.relative_position_bias_table',
         _MM_BLOCK + r'attn.w_msa.relative_position_bias_table'),
        (_SWIN_BLOCK + r'mlp\.fc1\.(weight|bias)',
         _MM_BLOCK + r'ffn.layers.0.0.\3'),
        (_SWIN_BLOCK + r'mlp\.fc2\.(weight|bias)',
         _MM_BLOCK + r'ffn.layers.1.\3'),
        (r'layers\.(\d+)\.downsample\.(reduction\.weight|norm\.weight|'
         r'norm\.bias)', r'stages.\1.downsample.\2'),
    ))
_SWIN_MERGE_KEY = re.compile(r'layers\.\d+\.downsample\.'
                             r'(reduction\.weight|norm\.weight|norm\.bias)')
_SWIN_INDEX_KEY = re.compile(_SWIN_BLOCK + r'attn\.relative_position_index')
_SWIN_FINAL_NORM_KEY = re.compile(r'norm\.(weight|bias)')
_SWIN_STAGE_KEY = re.compile(r'layers\.(\d+)\.')
_SWIN_BLOCK_KEY = re.compile(_SWIN_BLOCK)

_MOCOV3_ENCODER_PREFIX = 'module.base_encoder.'
_MOBY_ENCODER_PREFIX = 'encoder.'
_MAX_KEYS_IN_MESSAGE = 20

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


def _format_keys(keys: Sequence[str]) -> str:
    """``'a', 'b', ... (+N more)`` for error messages."""
    keys = list(keys)
    shown = ', '.join(repr(key) for key in keys[:_MAX_KEYS_IN_MESSAGE])
    if len(keys) > _MAX_KEYS_IN_MESSAGE:
        shown += f', ... (+{len(keys) - _MAX_KEYS_IN_MESSAGE} more)'
    return shown


def _iter_keys(keys: Iterable[str], show_progress: bool) -> Iterator[str]:
    """Iterate over ``keys``, with an mmengine progress bar if asked."""
    keys = list(keys)
    progress = ProgressBar(len(keys)) if show_progress and keys else None
    for key in keys:
        yield key
        if progress is not None:
            progress.update()
    if progress is not None:
        progress.file.write('\n')


def _map_timm_key(key: str) -> Optional[str]:
    """mmpretrain name of a timm ViT key, or None if no rule matches."""
    for pattern, replacement in _TIMM_TO_MMPRETRAIN_RULES:
        if pattern.fullmatch(key):
            return pattern.sub(replacement, key)
    return None


def _non_encoder_pattern(
        key: str,
        patterns: Mapping[str, str] = NON_ENCODER_KEY_PATTERNS
) -> Optional[str]:
    """The entry of ``patterns`` (fnmatch) that ``key`` matches, if any."""
    for pattern in patterns:
        if fnmatch.fnmatchcase(key, pattern):
            return pattern
    return None


def _drop_or_reject(key: str, patterns: Mapping[str, str],
                    dropped: Dict[str, List[str]],
                    unknown: List[str]) -> None:
    """File a key that no renaming rule maps: under the first of
    ``patterns`` it matches in ``dropped``, else in ``unknown``."""
    pattern = _non_encoder_pattern(key, patterns)
    if pattern is not None:
        dropped.setdefault(pattern, []).append(key)
    else:
        unknown.append(key)


def _report_dropped(dropped: Mapping[str, Sequence[str]],
                    patterns: Mapping[str, str],
                    what: str = 'non-encoder') -> None:
    """Log the keys dropped per pattern, by name (first 20, then a count)."""
    for pattern, keys in dropped.items():
        print_log(
            f'Dropped {len(keys)} {what} key(s) matching {pattern!r} '
            f'({patterns[pattern]}): {_format_keys(keys)}',
            logger='current')


def timm_vit_to_mmpretrain(state_dict: Mapping[str, Tensor],
                           *,
                           show_progress: bool = False) -> 'OrderedDict':
    """Rename a timm-style ViT state dict to mmpretrain's names.

    The table is in the module docstring. Keys matching
    :data:`NON_ENCODER_KEY_PATTERNS` are dropped and reported via the logger.

    Args:
        state_dict (Mapping[str, Tensor]): timm ViT keys (the ``'model'`` of an
            MAE release, or MoCo v3's ``module.base_encoder.*`` with the
            prefix removed).
        show_progress (bool): show a progress bar over the keys.

    Returns:
        OrderedDict[str, Tensor]: the same tensors under mmpretrain
        ``VisionTransformer`` names, in the input order.

    Raises:
        CheckpointFormatError: some keys are neither mappable nor known
            non-encoder keys; the message names them (the first 20, then a
            count).
    """
    converted: 'OrderedDict[str, Tensor]' = OrderedDict()
    dropped: Dict[str, List[str]] = OrderedDict()
    unknown: List[str] = []
    for key in _iter_keys(state_dict.keys(), show_progress):
        new_key = _map_timm_key(key)
        if new_key is not None:
            converted[new_key] = state_dict[key]
            continue
        _drop_or_reject(key, NON_ENCODER_KEY_PATTERNS, dropped, unknown)
    if unknown:
        raise CheckpointFormatError(
            f'{len(unknown)} key(s) of the timm ViT state dict cannot be '
            f'mapped to mmpretrain VisionTransformer keys: '
            f'{_format_keys(unknown)}. Mappable: cls_token, pos_embed, '
            f'patch_embed.proj, blocks.i.{{norm1,attn.qkv,attn.proj,ls1,'
            f'norm2,mlp.fc1,mlp.fc2,ls2}}, norm, fc_norm; dropped as '
            f'non-encoder: {", ".join(NON_ENCODER_KEY_PATTERNS)}.')
    _report_dropped(dropped, NON_ENCODER_KEY_PATTERNS)
    return converted


def swin_relative_position_index(window_size: int) -> Tensor:
    """The relative-position index of a square Swin attention window.

    Entry ``(p, q)`` indexes the ``((2 * W - 1) ** 2, num_heads)`` bias
    table for query token ``p`` and key token ``q`` (row-major in the
    window): ``(dy + W - 1) * (2 * W - 1) + (dx + W - 1)`` with
    ``(dy, dx)`` the position of ``p`` minus that of ``q``. The official Swin
    and mmpretrain's ``WindowMSA`` compute this same buffer.

    Args:
        window_size (int): window side ``W``.

    Returns:
        Tensor: int64, shape ``(W * W, W * W)``.
    """
    rows, cols = torch.meshgrid(
        torch.arange(window_size), torch.arange(window_size), indexing='ij')
    rows, cols = rows.flatten(), cols.flatten()
    delta_rows = rows[:, None] - rows[None, :] + window_size - 1
    delta_cols = cols[:, None] - cols[None, :] + window_size - 1
    return delta_rows * (2 * window_size - 1) + delta_cols


def swin_merge_to_unfold_order(value: Tensor) -> Tensor:
    """Reorder the ``4 * C`` merged features of a Swin ``PatchMerging``.

    Official Swin / timm order (position major): feature
    ``(dy + 2 * dx) * C + c``; mmcv ``PatchMerging`` (``nn.Unfold``, channel
    major): feature ``c * 4 + dy * 2 + dx``, for the ``(dy, dx)`` row / column
    offset in the 2x2 neighbourhood and channel ``c``.

    Args:
        value (Tensor): merge-norm weight / bias, shape ``(4 * C,)``, or
            reduction weight, shape ``(out_channels, 4 * C)``; the last
            dimension is reordered.

    Returns:
        Tensor: same shape, in mmcv's order.

    Raises:
        CheckpointFormatError: the last dimension is not a multiple of 4.
    """
    merged = value.shape[-1]
    if merged % 4:
        raise CheckpointFormatError(
            f'A Swin PatchMerging tensor must have 4 * C merged features in '
            f'its last dimension, got shape {tuple(value.shape)}')
    lead = value.shape[:-1]
    num_lead = len(lead)
    # (..., dx, dy, c) -> (..., c, dy, dx)
    grouped = value.reshape(*lead, 2, 2, merged // 4)
    return grouped.permute(*range(num_lead), num_lead + 2, num_lead + 1,
                           num_lead).reshape(*lead, merged)


def _map_swin_key(key: str) -> Optional[str]:
    """mmpretrain name of an official Swin key, or None if no rule matches."""
    for pattern, replacement in _SWIN_TO_MMPRETRAIN_RULES:
        if pattern.fullmatch(key):
            return pattern.sub(replacement, key)
    return None


def _window_size_of_table(key: str, table: Tensor) -> int:
    """Window side ``W`` of a ``((2W-1)**2, heads)`` relative bias table."""
    side = round(table.shape[0]**0.5) if table.dim() == 2 else 0
    if side * side != table.shape[0] or side % 2 == 0:
        raise CheckpointFormatError(
            f'{key!r} has shape {tuple(table.shape)}; a square Swin window '
            f'of side W needs a ((2W-1)**2, num_heads) table')
    return (side + 1) // 2


def swin_to_mmpretrain(state_dict: Mapping[str, Tensor],
                       *,
                       show_progress: bool = False) -> 'OrderedDict':
    """Rename an official Swin (v1) state dict to mmpretrain's names.

    The table is in the module docstring. The ``PatchMerging`` norm and
    reduction are reordered by :func:`swin_merge_to_unfold_order`;
    ``relative_position_index`` is rebuilt for every block from its bias table
    (:func:`swin_relative_position_index`) and a stored one must equal it;
    keys matching :data:`SWIN_DROPPED_KEY_PATTERNS` are dropped and reported.
    The final ``norm`` becomes ``norm{S}`` for the last stage ``S``.

    Args:
        state_dict (Mapping[str, Tensor]): official Swin keys (MoBY's
            ``encoder.*`` with the prefix removed).
        show_progress (bool): show a progress bar over the keys.

    Returns:
        OrderedDict[str, Tensor]: mmpretrain ``SwinTransformer`` keys (load
        into ``SimMIMSwinTransformer`` with ``allowed_missing=
        ('mask_token',)``).

    Raises:
        CheckpointFormatError: keys that are neither mappable nor dropped
            (named, the first 20 then a count); a stored
            ``relative_position_index`` that differs from the rebuilt one;
            blocks without ``norm2`` (MoBY-Swin-T-BN); bad tensor shapes.
    """
    converted: 'OrderedDict[str, Tensor]' = OrderedDict()
    stored_index: Dict[str, Tuple[str, Tensor]] = OrderedDict()
    final_norm: Dict[str, Tensor] = OrderedDict()
    dropped: Dict[str, List[str]] = OrderedDict()
    unknown: List[str] = []
    stages, blocks, blocks_with_norm2 = set(), set(), set()
    for key in _iter_keys(state_dict.keys(), show_progress):
        value = state_dict[key]
        stage = _SWIN_STAGE_KEY.match(key)
        block = _SWIN_BLOCK_KEY.match(key)
        if stage is not None:
            stages.add(int(stage.group(1)))
        if block is not None:
            blocks.add(block.group(0))
            if key == block.group(0) + 'norm2.weight':
                blocks_with_norm2.add(block.group(0))
        if _SWIN_INDEX_KEY.fullmatch(key):
            new_key = _SWIN_INDEX_KEY.sub(
                _MM_BLOCK + 'attn.w_msa.relative_position_index', key)
            stored_index[new_key] = (key, value)
            continue
        final = _SWIN_FINAL_NORM_KEY.fullmatch(key)
        if final is not None:
            final_norm[final.group(1)] = value
            continue
        new_key = _map_swin_key(key)
        if new_key is not None:
            if _SWIN_MERGE_KEY.fullmatch(key):
                value = swin_merge_to_unfold_order(value)
            converted[new_key] = value
            if new_key.endswith('relative_position_bias_table'):
                window_size = _window_size_of_table(key, value)
                converted[new_key.replace('bias_table', 'index')] = (
                    swin_relative_position_index(window_size))
            continue
        _drop_or_reject(key, SWIN_DROPPED_KEY_PATTERNS, dropped, unknown)

    for new_key, (key, value) in stored_index.items():
        if new_key not in converted:
            unknown.append(key)  # an index without its bias table
        elif not torch.equal(value.long().cpu(), converted[new_key]):
            raise CheckpointFormatError(
                f'{key!r} differs from the relative position index of a '
                f'{int(converted[new_key].shape[0]**0.5)}x'
                f'{int(converted[new_key].shape[0]**0.5)} Swin window (the '
                f'one official Swin and mmpretrain build); this is not an '
                f'official Swin (v1) checkpoint')
    if unknown:
        raise CheckpointFormatError(
            f'{len(unknown)} key(s) of the Swin state dict cannot be mapped '
            f'to mmpretrain SwinTransformer keys: {_format_keys(unknown)}. '
            f'Mappable: patch_embed.{{proj,norm}}, absolute_pos_embed, '
            f'layers.i.blocks.j.{{norm1,attn.qkv,attn.proj,'
            f'attn.relative_position_bias_table,'
            f'attn.relative_position_index,norm2,mlp.fc1,mlp.fc2}}, '
            f'layers.i.downsample.{{reduction,norm}}, norm; dropped: '
            f'{", ".join(SWIN_DROPPED_KEY_PATTERNS)}.')
    no_norm2 = sorted(blocks - blocks_with_norm2)
    if no_norm2:
        raise CheckpointFormatError(
            f'{len(no_norm2)} Swin block(s) have no norm2.weight (the '
            f'LayerNorm before the MLP): {_format_keys(no_norm2)}. MoBY-Swin-'
            f'T-BN (NORM_BEFORE_MLP=bn) normalises there with a parameter-'
            f'less BatchNorm that mmpretrain SwinTransformer cannot express; '
            f'use a LayerNorm release (e.g. moby_swin_t_300ep_pretrained.pth)'
            f'.')
    if final_norm:
        if not stages:
            raise CheckpointFormatError(
                'The Swin state dict has a final norm but no layers.i.* '
                'stage keys: cannot tell the last stage')
        last_stage = max(stages)
        for name, value in final_norm.items():
            converted[f'norm{last_stage}.{name}'] = value
    _report_dropped(dropped, SWIN_DROPPED_KEY_PATTERNS, what='Swin')
    return converted


def _split_moby_encoder(model: Mapping[str, Tensor],
                        show_progress: bool) -> 'OrderedDict':
    """Online encoder ``encoder.*`` (prefix removed) of a MoBY ``'model'``.

    Keys of :data:`MOBY_NON_ENCODER_KEY_PATTERNS` are dropped and reported;
    any other key raises :class:`CheckpointFormatError` naming it.
    """
    encoder: 'OrderedDict[str, Tensor]' = OrderedDict()
    dropped: Dict[str, List[str]] = OrderedDict()
    unknown: List[str] = []
    for key in _iter_keys(model.keys(), show_progress):
        if key.startswith(_MOBY_ENCODER_PREFIX):
            encoder[key[len(_MOBY_ENCODER_PREFIX):]] = model[key]
            continue
        _drop_or_reject(key, MOBY_NON_ENCODER_KEY_PATTERNS, dropped,
                        unknown)
    if unknown:
        raise CheckpointFormatError(
            f'{len(unknown)} key(s) of the MoBY checkpoint are neither the '
            f'online encoder ({_MOBY_ENCODER_PREFIX}*) nor known MoBY '
            f'parts ({", ".join(MOBY_NON_ENCODER_KEY_PATTERNS)}): '
            f'{_format_keys(unknown)}')
    _report_dropped(dropped, MOBY_NON_ENCODER_KEY_PATTERNS)
    return encoder


def _looks_like_moby_swin(model: Mapping[str, object]) -> bool:
    return (_MOBY_ENCODER_PREFIX + 'patch_embed.proj.weight' in model
            and any(
                key.startswith(_MOBY_ENCODER_PREFIX + 'layers.')
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
            if any(key.startswith(_MOCOV3_ENCODER_PREFIX) for key in keys):
                return 'mocov3'
            if (isinstance(meta, Mapping)
                    and meta.get(_BACKBONE_META_KEY) == 'backbone'):
                return 'backbone'
            if 'patch_embed.projection.weight' in state_dict:
                return 'backbone'
            if any(key.startswith('backbone.') for key in keys):
                return 'mmpretrain'
        top_level = _format_keys(list(checkpoint.keys()))
        inner = state_dict if isinstance(state_dict, Mapping) else model
        inner_keys = (f'; its first keys: {_format_keys(list(inner)[:5])}'
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
def _naming_file(path: Union[str, os.PathLike]) -> Iterator[None]:
    """Re-raise a :class:`CheckpointFormatError` with the file's path."""
    try:
        yield
    except CheckpointFormatError as err:
        raise CheckpointFormatError(
            f'Checkpoint {str(path)!r}: {err}') from err


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
    taken: 'OrderedDict[str, Tensor]' = OrderedDict()
    for key in _iter_keys(state_dict.keys(), show_progress):
        if key.startswith(prefix):
            taken[key[len(prefix):]] = state_dict[key]
    if not taken:
        first_parts = sorted(
            {key.split('.', 1)[0] + '.'
             for key in state_dict})
        raise CheckpointFormatError(
            f'No key of the checkpoint starts with prefix={prefix!r}; its '
            f'keys start with {_format_keys(first_parts)}.')
    return taken


def load_backbone_state_dict(path_or_checkpoint: Union[str, os.PathLike,
                                                       Mapping],
                             prefix: str = 'backbone.',
                             map_location: Union[str, torch.device] = 'cpu',
                             *,
                             show_progress: bool = False) -> 'OrderedDict':
    """Read a backbone from any of :data:`CHECKPOINT_FORMATS`.

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
    with _naming_file(path_or_checkpoint):
        return _backbone_state_dict(checkpoint, prefix, show_progress)


def _backbone_state_dict(checkpoint: Mapping, prefix: str,
                         show_progress: bool) -> 'OrderedDict':
    """:func:`load_backbone_state_dict` of a loaded checkpoint."""
    checkpoint_format = detect_checkpoint_format(checkpoint)
    if checkpoint_format == 'mae':
        return timm_vit_to_mmpretrain(
            checkpoint['model'], show_progress=show_progress)
    if checkpoint_format == 'moby':
        encoder = _split_moby_encoder(checkpoint['model'], show_progress)
        print_log(
            f'MoBY checkpoint: reading the online encoder '
            f'{_MOBY_ENCODER_PREFIX}* ({len(encoder)} keys, official Swin '
            f'naming)',
            logger='current')
        return swin_to_mmpretrain(encoder)
    state_dict = checkpoint['state_dict']
    if checkpoint_format == 'mocov3':
        encoder = _take_prefix(state_dict, _MOCOV3_ENCODER_PREFIX,
                               show_progress)
        num_ignored = len(state_dict) - len(encoder)
        print_log(
            f'MoCo v3 checkpoint: reading {_MOCOV3_ENCODER_PREFIX}*, ignoring '
            f'{num_ignored} key(s) of the momentum encoder and predictor',
            logger='current')
        return timm_vit_to_mmpretrain(encoder)
    if checkpoint_format == 'mmpretrain':
        return _take_prefix(state_dict, prefix, show_progress)
    # 'backbone'
    return OrderedDict((key, state_dict[key])
                       for key in _iter_keys(state_dict.keys(), show_progress))


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
                            f'{_format_keys(not_allowed)}')
        if unexpected:
            problems.append(f'{len(unexpected)} unexpected key(s): '
                            f'{_format_keys(unexpected)}')
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
                    f'{list(allowed_missing)}: {_format_keys(missing)})')
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
            f'key(s) the module does not have: {_format_keys(dropped)}',
            logger='current')
    return load_state_dict_strict(
        module, state_dict, allowed_missing=allowed_missing, name=label)


def save_backbone_checkpoint(
        state_dict: Mapping[str, Tensor],
        path: Union[str, os.PathLike],
        meta: Optional[Mapping[str, object]] = None) -> None:
    """Write a backbone-only file ``{'state_dict': ..., 'meta': ...}``.

    MMEngine's checkpoint loader unwraps ``'state_dict'``, so the file works
    as ``init_cfg=dict(type='Pretrained', checkpoint=path)`` of a backbone.
    ``meta['checkpoint_format']`` is set to ``'backbone'``.

    Args:
        state_dict (Mapping[str, Tensor]): backbone keys, no prefix.
        path (str | PathLike): output file; parent folders are created.
        meta (Mapping, optional): source information (plain Python values, so
            the file loads with ``weights_only=True``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    full_meta = dict(meta or {})
    full_meta[_BACKBONE_META_KEY] = 'backbone'
    torch.save(dict(state_dict=OrderedDict(state_dict), meta=full_meta), path)


def convert_to_backbone_checkpoint(src: Union[str, os.PathLike],
                                   dst: Union[str, os.PathLike],
                                   expected_format: str,
                                   prefix: str = 'backbone.',
                                   show_progress: bool = True) -> int:
    """Convert ``src`` to a backbone-only file at ``dst`` (the CLIs' body).

    Args:
        src (str | PathLike): source checkpoint.
        dst (str | PathLike): output file (must differ from ``src``).
        expected_format (str): the format ``src`` must be in, one of
            :data:`CHECKPOINT_FORMATS`.
        prefix (str): sub-module of an ``'mmpretrain'`` checkpoint.
        show_progress (bool): show a progress bar over the keys.

    Returns:
        int: number of keys written.

    Raises:
        ValueError: ``expected_format`` is unknown or ``dst`` is ``src``.
        CheckpointFormatError: ``src`` is in another format.
    """
    if expected_format not in CHECKPOINT_FORMATS:
        raise ValueError(
            f'expected_format must be one of '
            f'{list(CHECKPOINT_FORMATS)}, got {expected_format!r}')
    if Path(dst).resolve() == Path(src).resolve():
        raise ValueError(f'dst must differ from src, got {str(dst)!r} twice')
    checkpoint = load_checkpoint_file(src)
    source_format = detect_checkpoint_format(checkpoint)
    if source_format != expected_format:
        raise CheckpointFormatError(
            f'{str(src)!r} is a {source_format!r} checkpoint '
            f'({CHECKPOINT_FORMATS[source_format]}), but this converter reads '
            f'{expected_format!r} ({CHECKPOINT_FORMATS[expected_format]}). '
            f'Converters: tools/model_converters/mae_to_mmpretrain.py (mae), '
            f'mocov3_to_mmpretrain.py (mocov3), moby_to_mmpretrain.py '
            f'(moby), extract_backbone.py (mmpretrain); a backbone file '
            f'needs no conversion.')
    with _naming_file(src):
        state_dict = load_backbone_state_dict(
            checkpoint, prefix=prefix, show_progress=show_progress)
    meta: Dict[str, object] = dict(
        source=str(src),
        source_format=source_format,
        converter='mmmoma.models.utils.checkpoint_formats')
    if source_format == 'mmpretrain':
        meta['source_prefix'] = prefix
        source_meta = checkpoint.get('meta')
        if isinstance(source_meta, Mapping):
            for key in ('epoch', 'iter', 'experiment_name'):
                if key in source_meta:
                    meta[f'source_{key}'] = source_meta[key]
    if source_format in ('mocov3', 'moby'):
        for key in ('arch', 'epoch'):
            if isinstance(checkpoint.get(key), (str, int)):
                meta[f'source_{key}'] = checkpoint[key]
    save_backbone_checkpoint(state_dict, dst, meta)
    return len(state_dict)
