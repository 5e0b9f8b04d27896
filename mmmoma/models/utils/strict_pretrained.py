"""An ``init_cfg`` that loads pre-trained weights and fails loudly."""
from typing import List, Optional, Sequence

from mmengine.logging import MMLogger
from mmengine.model import BaseModule
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

    Loaded last, like mmengine's ``Pretrained``: mmengine applies any other
    ``init_cfg`` *before* the children's ``init_weights`` (which would then
    overwrite the loaded weights, e.g. Swin's relative position tables or a
    ViT's ``pos_embed``). Importing mmmoma makes a ``BaseModule`` load a
    child's ``StrictPretrained`` after that child's whole ``init_weights``
    (:func:`install_load_last`), and ``MaskedViT`` does the same for itself
    as the top-level module. The config may name it ``'StrictPretrained'``
    or ``'mmpretrain.StrictPretrained'`` under any default scope (mmseg
    configs too).

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


def is_strict_pretrained(init_cfg: object) -> bool:
    """Whether ``init_cfg`` is a ``StrictPretrained`` dict (any scope)."""
    return (isinstance(init_cfg, dict) and str(init_cfg.get(
        'type', '')).rsplit('.', 1)[-1] == StrictPretrained.__name__)


def split_strict_pretrained(
        init_cfg: object) -> 'tuple[Optional[object], List[dict]]':
    """Split a module's ``init_cfg`` into (the rest, StrictPretrained cfgs).

    Args:
        init_cfg (dict | list | None): a ``BaseModule.init_cfg``.

    Returns:
        tuple: ``init_cfg`` without ``StrictPretrained`` entries (``None``
        if nothing is left), and those entries.
    """
    cfgs = init_cfg if isinstance(init_cfg, list) else [init_cfg]
    strict = [cfg for cfg in cfgs if is_strict_pretrained(cfg)]
    if not strict:
        return init_cfg, []
    rest = [cfg for cfg in cfgs if cfg and not is_strict_pretrained(cfg)]
    if isinstance(init_cfg, list):
        return (rest or None), strict
    return None, strict


def apply_strict_pretrained(module: nn.Module, init_cfg: dict) -> None:
    """Build ``StrictPretrained`` from ``init_cfg`` and load ``module``."""
    kwargs = {key: value for key, value in init_cfg.items() if key != 'type'}
    StrictPretrained(**kwargs)(module)


def install_load_last() -> None:
    """Make ``BaseModule.init_weights`` load children's StrictPretrained last.

    For every direct child whose ``init_cfg`` holds a ``StrictPretrained``
    entry, the entry is removed while the parent runs mmengine's
    ``init_weights`` (which calls the child's full ``init_weights``), then
    put back and applied. Idempotent.
    """
    if getattr(BaseModule.init_weights, '_mmmoma_load_last', False):
        return
    original_init_weights = BaseModule.init_weights

    def init_weights(self: BaseModule) -> None:
        deferred = []
        if not getattr(self, '_is_init', False):
            for child in self.children():
                init_cfg = getattr(child, 'init_cfg', None)
                rest, strict = split_strict_pretrained(init_cfg)
                if strict and not getattr(child, 'is_init', False):
                    child.init_cfg = rest
                    deferred.append((child, init_cfg, strict))
        try:
            original_init_weights(self)
        finally:
            for child, init_cfg, _ in deferred:
                child.init_cfg = init_cfg
        for child, _, strict in deferred:
            for cfg in strict:
                apply_strict_pretrained(child, cfg)

    init_weights._mmmoma_load_last = True
    BaseModule.init_weights = init_weights


install_load_last()
