"""Heads (loss heads) of the pre-training algorithms."""
from .momentum_contrast_head import (MomentumContrastHead, moby_mlp,
                                     patch_queue_key)

__all__ = ['MomentumContrastHead', 'moby_mlp', 'patch_queue_key']
