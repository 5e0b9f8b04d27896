"""Loss functions and loss weighting."""
from .info_nce import queue_info_nce
from .weighting import UncertaintyWeighting

__all__ = ['UncertaintyWeighting', 'queue_info_nce']
