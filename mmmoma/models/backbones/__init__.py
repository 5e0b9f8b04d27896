from .masked_mocov3_vit import MaskedMoCoV3ViT
from .masked_vit import MaskedViT
from .simmim_vit import SimMIMViT

__all__ = ['MaskedViT', 'MaskedMoCoV3ViT', 'SimMIMViT']
