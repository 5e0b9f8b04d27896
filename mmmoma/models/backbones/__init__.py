from .masked_vit import MaskedViT
from .simmim_vit import SimMIMViT

__all__ = ['MaskedViT', 'SimMIMViT']
