"""Self-supervised algorithms (one file per paper)."""
from .mimco import MimCo
from .moma import MOMA
from .sdae import SdAE

__all__ = ['MimCo', 'MOMA', 'SdAE']
