from . import transforms  # noqa: F401  (registers the transforms)
from .digit_scenes import load_digit_scenes, make_digit_scenes
from .transforms import ContrastiveViews

__all__ = ['make_digit_scenes', 'load_digit_scenes', 'ContrastiveViews']
