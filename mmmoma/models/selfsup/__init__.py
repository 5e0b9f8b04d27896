"""Self-supervised algorithms (one file per paper)."""
from .moma import MOMA
from .sdae import SdAE

__all__ = ['MOMA', 'SdAE']
