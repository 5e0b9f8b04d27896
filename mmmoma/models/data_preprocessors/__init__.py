"""Data preprocessors: the GPU data path (decode and augment on the device)."""
from .gpu_augment import GPUAugmentDataPreprocessor

__all__ = ['GPUAugmentDataPreprocessor']
