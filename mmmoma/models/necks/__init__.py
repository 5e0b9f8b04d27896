"""Necks (projectors / predictors) of the pre-training algorithms."""
from .class_attention import ClassAttentionBlocks
from .conv_projector import ConvProjector
from .norm_mlp import NormMLP
from .token_projector import TokenProjector

__all__ = [
    'ClassAttentionBlocks', 'ConvProjector', 'NormMLP', 'TokenProjector'
]
