"""Rename official Swin (v1) keys to mmpretrain ``SwinTransformer`` names.

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
"""
import re
from collections import OrderedDict
from typing import Dict, List, Mapping, Tuple

import torch
from torch import Tensor

from .detect import CheckpointFormatError
from .keys import (drop_or_reject, format_keys, iter_keys, rename_key,
                   report_dropped)

__all__ = [
    'SWIN_DROPPED_KEY_PATTERNS', 'swin_to_mmpretrain',
    'swin_merge_to_unfold_order', 'swin_relative_position_index'
]

#: Official-Swin-named keys that mmpretrain's ``SwinTransformer`` does not
#: store. Dropped by :func:`swin_to_mmpretrain` (and reported).
SWIN_DROPPED_KEY_PATTERNS: Dict[str, str] = OrderedDict([
    ('layers.*.blocks.*.attn_mask', 'shifted-window attention masks '
     '(deterministic buffers; mmpretrain builds them in forward)'),
    ('head.*', 'classifier head'),
])

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
    for key in iter_keys(state_dict.keys(), show_progress):
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
        new_key = rename_key(key, _SWIN_TO_MMPRETRAIN_RULES)
        if new_key is not None:
            if _SWIN_MERGE_KEY.fullmatch(key):
                value = swin_merge_to_unfold_order(value)
            converted[new_key] = value
            if new_key.endswith('relative_position_bias_table'):
                window_size = _window_size_of_table(key, value)
                converted[new_key.replace('bias_table', 'index')] = (
                    swin_relative_position_index(window_size))
            continue
        drop_or_reject(key, SWIN_DROPPED_KEY_PATTERNS, dropped, unknown)

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
            f'to mmpretrain SwinTransformer keys: {format_keys(unknown)}. '
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
            f'LayerNorm before the MLP): {format_keys(no_norm2)}. MoBY-Swin-'
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
    report_dropped(dropped, SWIN_DROPPED_KEY_PATTERNS, what='Swin')
    return converted
