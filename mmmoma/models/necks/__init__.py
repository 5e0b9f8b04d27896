"""Necks (projectors / predictors) of the pre-training algorithms."""
from .conv_projector import ConvProjector
from .token_projector import TokenProjector

__all__ = ['ConvProjector', 'TokenProjector']
