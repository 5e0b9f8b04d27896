"""An ``init_cfg`` that loads pre-trained weights and fails loudly."""
from typing import Sequence

from mmengine.logging import MMLogger
from mmpretrain.registry import WEIGHT_INITIALIZERS
from torch import nn

from .checkpoint_formats import load_backbone_weights


@WEIGHT_INITIALIZERS.register_module()
class StrictPretrained:
    """Initialise a backbone from a checkpoint, strictly.

    Unlike mmengine's ``Pretrained`` (``strict=False``: a checkpoint whose
    keys carry the wrong prefix loads *nothing* and training silently starts
    from scratch), this raises an error naming every expected key that the
    checkpoint does not provide (beyond ``allowed_missing``) and every key it
    provides that the module does not have.

    Any format of ``checkpoint_formats.load_backbone_state_dict`` is
    accepted: an mmmoma / mmpretrain training checkpoint (``prefix`` selects
    the sub-module), a converted backbone file, or an official MAE / MoCo v3
    release.

    Use it as ``init_cfg`` of a ``MaskedViT`` backbone, which applies it after
    its own random initialisation (mmengine would otherwise run it *before*
    the children's ``init_weights``, which then overwrite the loaded weights).

    Args:
        checkpoint (str): path of the checkpoint.
        prefix (str): sub-module of a training checkpoint to load.
            Defaults to ``'backbone.'``.
        allowed_missing (Sequence[str]): fnmatch patterns of module keys the
            checkpoint may lack, e.g. ``['ln2.*']`` for a fine-tuning
            ``fc_norm``. Defaults to none.
    """

    def __init__(self,
                 checkpoint: str,
                 prefix: str = 'backbone.',
                 allowed_missing: Sequence[str] = ()) -> None:
        if not checkpoint:
            raise ValueError(
                'init_cfg=dict(type="StrictPretrained") needs `checkpoint`, '
                'the path of the pre-trained weights (set init_cfg=None for '
                'random initialisation)')
        self.checkpoint = checkpoint
        self.prefix = prefix
        self.allowed_missing = tuple(allowed_missing)

    def __call__(self, module: nn.Module) -> None:
        num_loaded = load_backbone_weights(
            module,
            self.checkpoint,
            prefix=self.prefix,
            allowed_missing=self.allowed_missing)
        MMLogger.get_current_instance().info(
            f'StrictPretrained: loaded {num_loaded} tensors into '
            f'{type(module).__name__} from {self.checkpoint}')

    def _get_init_info(self) -> str:
        return f'{type(self).__name__}: load from {self.checkpoint}'
