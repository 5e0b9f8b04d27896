"""Checkpoint formats: read, convert, load strictly, export backbones.

One module per job:

* :mod:`.detect`: the recognised formats, their detection,
  :class:`CheckpointFormatError`, reading a file (errors name it);
* :mod:`.timm_vit`: timm ViT keys (MAE, MoCo v3 releases) -> mmpretrain;
* :mod:`.swin`: official Swin keys -> mmpretrain ``SwinTransformer``;
* :mod:`.moby`: the Swin encoder of a MoBY release;
* :mod:`.keys`: walking, filing and naming keys (shared by the converters);
* :mod:`.loading`: a backbone state dict from any format, strict loading;
* :mod:`.export`: writing backbone-only files (the model converters);
* :mod:`.strict_pretrained`: the ``StrictPretrained`` init cfg (registered
  on import);
* :mod:`.transfer`: pre-training checkpoint -> mmpretrain / mmseg transfer
  backbones.
"""
from .detect import (CHECKPOINT_FORMATS, CheckpointFormatError,
                     detect_checkpoint_format, load_checkpoint_file)
from .export import convert_to_backbone_checkpoint, save_backbone_checkpoint
from .loading import (PRETRAINING_ONLY_BACKBONE_KEYS, CheckpointMismatchError,
                      load_backbone_state_dict, load_backbone_weights,
                      load_state_dict_strict, with_context)
from .moby import MOBY_NON_ENCODER_KEY_PATTERNS, moby_to_mmpretrain
from .strict_pretrained import StrictPretrained
from .swin import (SWIN_DROPPED_KEY_PATTERNS, swin_merge_to_unfold_order,
                   swin_relative_position_index, swin_to_mmpretrain)
from .timm_vit import NON_ENCODER_KEY_PATTERNS, timm_vit_to_mmpretrain
from .transfer import MOMENTUM_TARGET_META, export_transfer_backbones

__all__ = [
    'CHECKPOINT_FORMATS', 'NON_ENCODER_KEY_PATTERNS',
    'MOBY_NON_ENCODER_KEY_PATTERNS', 'SWIN_DROPPED_KEY_PATTERNS',
    'PRETRAINING_ONLY_BACKBONE_KEYS', 'MOMENTUM_TARGET_META',
    'CheckpointFormatError', 'CheckpointMismatchError', 'StrictPretrained',
    'timm_vit_to_mmpretrain', 'swin_to_mmpretrain', 'moby_to_mmpretrain',
    'swin_merge_to_unfold_order', 'swin_relative_position_index',
    'detect_checkpoint_format', 'load_checkpoint_file',
    'load_backbone_state_dict', 'load_state_dict_strict',
    'load_backbone_weights', 'with_context', 'save_backbone_checkpoint',
    'convert_to_backbone_checkpoint', 'export_transfer_backbones'
]
