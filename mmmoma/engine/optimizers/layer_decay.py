"""Layer-wise learning-rate decay for any model whose backbone knows depths.

mmpretrain's ``LearningRateDecayOptimWrapperConstructor`` asks the *model*
for ``get_layer_depth``: mmpretrain's ``ImageClassifier`` has it, mmseg's
``EncoderDecoder`` does not. mmseg's own ``LayerDecayOptimizerConstructor``
instead picks layer ids by the backbone's class *name* (``'BEiT'`` /
``'MAE'`` / ``'ConvNeXt'``) and rejects mmpretrain's ``VisionTransformer``.
This constructor serves both: the model's ``get_layer_depth`` if it has
one, else the ``backbone``'s (mmpretrain ``VisionTransformer`` /
``MaskedViT``, ``SwinTransformer``, ...), with every parameter outside the
backbone (neck, decode / auxiliary heads) in the last depth.

For a ViT with ``L`` blocks (depths: stem 0, block ``i`` → ``i + 1``,
rest ``L + 1``; ``L + 2`` depths) the learning rates are::

    patch_embed, cls_token, pos_embed:  lr * decay ** (L + 1)
    layers.i (0-based):                 lr * decay ** (L - i)
    final norm, neck, heads:            lr

the rule of BEiT, MAE and mmseg's constructor.
"""
from typing import Callable, List, Optional, Tuple

from mmengine.logging import MMLogger
from mmpretrain.engine.optimizers import \
    LearningRateDecayOptimWrapperConstructor
from mmpretrain.registry import OPTIM_WRAPPER_CONSTRUCTORS
from torch import nn


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class BackboneLayerDecayOptimWrapperConstructor(
        LearningRateDecayOptimWrapperConstructor):
    """mmpretrain's layer-decay constructor for classifiers *and* segmentors.

    ``paramwise_cfg`` is that of mmpretrain's
    ``LearningRateDecayOptimWrapperConstructor`` (``layer_decay_rate``,
    ``custom_keys`` for ``decay_mult``, ``norm_decay_mult``,
    ``bias_decay_mult``, ``flat_decay_mult``); ``layer_decay_rate`` must lie
    in (0, 1]. In an mmseg config write
    ``constructor='mmpretrain.BackboneLayerDecayOptimWrapperConstructor'``.

    Each parameter group carries ``lr``, ``lr_scale``, ``layer_id`` and
    ``param_name``; the schedulers keep the ratios between groups.
    """

    def __init__(self, optim_wrapper_cfg: dict,
                 paramwise_cfg: Optional[dict] = None) -> None:
        super().__init__(optim_wrapper_cfg, paramwise_cfg)
        decay_rate = self.paramwise_cfg.get('layer_decay_rate', 1.0)
        if (isinstance(decay_rate, bool)
                or not isinstance(decay_rate, (int, float))
                or not 0 < decay_rate <= 1):
            raise ValueError(
                'optim_wrapper.paramwise_cfg.layer_decay_rate must be a '
                f'number in (0, 1], got {decay_rate!r}')

    def add_params(self,
                   params: List[dict],
                   module: nn.Module,
                   prefix: str = '',
                   get_layer_depth: Optional[Callable] = None,
                   **kwargs) -> None:
        """Add ``module``'s parameters to ``params`` with decayed lrs.

        At the root (``get_layer_depth`` not given) the depth function is
        resolved by :func:`layer_depth_function`; the recursion is the
        parent's.
        """
        if get_layer_depth is None:
            get_layer_depth = layer_depth_function(module)
        super().add_params(
            params, module, prefix=prefix, get_layer_depth=get_layer_depth)
        if prefix == '':
            self._log_summary(params)

    def _log_summary(self, params: List[dict]) -> None:
        scales = sorted({(group['layer_id'], group['lr_scale'])
                         for group in params})
        summary = ', '.join(f'{layer_id}: {scale:.3g}'
                            for layer_id, scale in scales)
        MMLogger.get_current_instance().info(
            f'Layer-wise lr decay '
            f'{self.paramwise_cfg.get("layer_decay_rate", 1.0)}: lr scale by '
            f'depth {{{summary}}} (base lr {self.base_lr})')


def layer_depth_function(
        model: nn.Module) -> Callable[[str], Tuple[int, int]]:
    """Return ``name -> (depth, num_depths)`` for ``model``'s parameters.

    Args:
        model (nn.Module): a model with ``get_layer_depth(name)`` (mmpretrain
            ``ImageClassifier``), or with a ``backbone`` attribute that has
            ``get_layer_depth(name, prefix)`` (mmseg ``EncoderDecoder``).

    Returns:
        Callable: maps a parameter name of ``model`` to its depth and the
        number of depths; names outside ``backbone.`` get the last depth.

    Raises:
        TypeError: neither the model nor its backbone has
            ``get_layer_depth``.
    """
    if hasattr(model, 'get_layer_depth'):
        return model.get_layer_depth
    backbone = getattr(model, 'backbone', None)
    if backbone is not None and hasattr(backbone, 'get_layer_depth'):

        def get_layer_depth(param_name: str) -> Tuple[int, int]:
            return backbone.get_layer_depth(param_name, prefix='backbone.')

        return get_layer_depth
    backbone_type = type(backbone).__name__ if backbone is not None else None
    raise TypeError(
        'optim_wrapper.constructor=BackboneLayerDecayOptimWrapperConstructor '
        f'needs a model ({type(model).__name__}) or model.backbone '
        f'({backbone_type}) with a get_layer_depth(param_name, prefix) '
        'method, e.g. mmpretrain VisionTransformer / MaskedViT / '
        'SwinTransformer')
