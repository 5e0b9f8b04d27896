from .digit_scenes import load_digit_scenes, make_digit_scenes

__all__ = ['make_digit_scenes', 'load_digit_scenes']
