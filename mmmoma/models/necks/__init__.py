"""Necks (projectors / predictors) of the pre-training algorithms."""
from .token_projector import TokenProjector

__all__ = ['TokenProjector']
