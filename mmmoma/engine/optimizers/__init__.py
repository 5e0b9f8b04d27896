from .auto_amp import AutoAmpOptimWrapper
from .layer_decay import BackboneLayerDecayOptimWrapperConstructor

__all__ = ['AutoAmpOptimWrapper', 'BackboneLayerDecayOptimWrapperConstructor']
