"""Loss functions and loss weighting."""
from .weighting import UncertaintyWeighting

__all__ = ['UncertaintyWeighting']
