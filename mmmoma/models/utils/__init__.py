from .checkpoint_formats import (detect_checkpoint_format,
                                 load_backbone_state_dict,
                                 load_backbone_weights, load_state_dict_strict,
                                 timm_vit_to_mmpretrain)
from .config_fill import fill_channels
from .frozen_teacher import FrozenTeacher
from .key_queue import KeyQueue
from .momentum import check_unit_interval, cosine_momentum, ema_update_
from .strict_pretrained import StrictPretrained
from .token_selection import (TokenSplit, check_mask_ratio, expand_mask,
                              gather_tokens, num_visible_tokens,
                              random_block_mask, random_token_split,
                              shuffled_chunks, split_into_groups, split_prefix,
                              unfold_groups)
from .transfer import export_transfer_backbones
from .von_mises_fisher import spherical_mean, vmf_concentration

__all__ = [
    'FrozenTeacher', 'KeyQueue', 'StrictPretrained', 'TokenSplit',
    'fill_channels', 'export_transfer_backbones',
    'check_mask_ratio', 'gather_tokens', 'num_visible_tokens',
    'random_token_split', 'shuffled_chunks', 'split_into_groups',
    'split_prefix',
    'unfold_groups', 'expand_mask', 'random_block_mask',
    'check_unit_interval', 'cosine_momentum', 'ema_update_',
    'detect_checkpoint_format', 'load_backbone_state_dict',
    'load_backbone_weights', 'load_state_dict_strict',
    'timm_vit_to_mmpretrain', 'spherical_mean', 'vmf_concentration'
]
