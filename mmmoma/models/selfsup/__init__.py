"""Self-supervised algorithms (one file per paper)."""
from .mimco import MimCo
from .mmoco import MaskedBYOL, MaskedMoCoV3
from .moma import MOMA
from .sdae import SdAE

__all__ = ['MimCo', 'MaskedBYOL', 'MaskedMoCoV3', 'MOMA', 'SdAE']
