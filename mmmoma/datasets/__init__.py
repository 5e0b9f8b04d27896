from . import transforms  # noqa: F401  (registers the transforms)
from .transforms import ContrastiveViews

__all__ = ['ContrastiveViews']
