"""Self-supervised algorithms (one file per paper)."""
from .moma import MOMA

__all__ = ['MOMA']
