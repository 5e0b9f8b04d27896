"""Rename timm ViT keys (MAE, MoCo v3 releases) to mmpretrain's names.

The official MAE and MoCo v3 releases store a timm ``VisionTransformer``
(MoCo v3's online encoder under ``module.base_encoder.``); timm naming is
mapped to mmpretrain ``VisionTransformer`` naming by
:func:`timm_vit_to_mmpretrain`:

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
"""
import re
from collections import OrderedDict
from typing import Dict, List, Mapping, Tuple

from torch import Tensor

from .detect import CheckpointFormatError
from .keys import (drop_or_reject, format_keys, iter_keys, rename_key,
                   report_dropped)

__all__ = ['NON_ENCODER_KEY_PATTERNS', 'timm_vit_to_mmpretrain']

#: timm-named keys that are not part of the ViT encoder. They are dropped by
#: :func:`timm_vit_to_mmpretrain` (and reported), never mapped.
NON_ENCODER_KEY_PATTERNS: Dict[str, str] = OrderedDict([
    ('mask_token', 'MAE mask token (decoder input)'),
    ('decoder_*', 'MAE decoder (decoder_embed, decoder_blocks, '
     'decoder_norm, decoder_pred, decoder_pos_embed)'),
    ('head.*', 'classifier head (timm / MAE fine-tuning) or MoCo v3 '
     'projector'),
])

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
    for key in iter_keys(state_dict.keys(), show_progress):
        new_key = rename_key(key, _TIMM_TO_MMPRETRAIN_RULES)
        if new_key is not None:
            converted[new_key] = state_dict[key]
            continue
        drop_or_reject(key, NON_ENCODER_KEY_PATTERNS, dropped, unknown)
    if unknown:
        raise CheckpointFormatError(
            f'{len(unknown)} key(s) of the timm ViT state dict cannot be '
            f'mapped to mmpretrain VisionTransformer keys: '
            f'{format_keys(unknown)}. Mappable: cls_token, pos_embed, '
            f'patch_embed.proj, blocks.i.{{norm1,attn.qkv,attn.proj,ls1,'
            f'norm2,mlp.fc1,mlp.fc2,ls2}}, norm, fc_norm; dropped as '
            f'non-encoder: {", ".join(NON_ENCODER_KEY_PATTERNS)}.')
    report_dropped(dropped, NON_ENCODER_KEY_PATTERNS)
    return converted
