"""The ``StrictPretrained`` init cfg: load pre-trained weights, fail loudly.

Registered in mmpretrain's and mmengine's root ``WEIGHT_INITIALIZERS``.
Loading it *last* (after a module's whole ``init_weights``) is mmengine
behaviour that :mod:`mmmoma.compat` changes (fix #7,
:func:`mmmoma.compat.install_load_last`); the helpers it uses to find, split
off and apply ``StrictPretrained`` entries of an ``init_cfg`` are here.
"""
from typing import List, Optional, Sequence

from mmengine.logging import MMLogger
from mmengine.model import BaseModule
from mmengine.registry import WEIGHT_INITIALIZERS as ROOT_WEIGHT_INITIALIZERS
from mmpretrain.registry import WEIGHT_INITIALIZERS
from torch import nn

from .loading import load_backbone_weights

__all__ = [
    'StrictPretrained', 'is_strict_pretrained', 'split_strict_pretrained',
    'apply_strict_pretrained', 'apply_strict_pretrained_cfgs'
]


@WEIGHT_INITIALIZERS.register_module()
class StrictPretrained:
    """Initialise a backbone from a checkpoint, strictly.

    Unlike mmengine's ``Pretrained`` (``strict=False``: a checkpoint whose
    keys carry the wrong prefix loads *nothing* and training silently starts
    from scratch), this raises an error naming every expected key that the
    checkpoint does not provide (beyond ``allowed_missing``) and every key it
    provides that the module does not have.

    Any format of :func:`.loading.load_backbone_state_dict` is
    accepted: an mmmoma / mmpretrain training checkpoint (``prefix`` selects
    the sub-module), a converted backbone file, or an official MAE / MoCo v3
    release.

    Loaded last, like mmengine's ``Pretrained``: mmengine applies any other
    ``init_cfg`` *before* the children's ``init_weights`` (which would then
    overwrite the loaded weights, e.g. Swin's relative position tables or a
    ViT's FFNs), and overrides such as ``VisionTransformer.init_weights``
    re-draw weights (``pos_embed``) after ``super().init_weights()``.
    Importing mmmoma makes any ``BaseModule``, top-level or a child, load
    its ``StrictPretrained`` after its whole ``init_weights``
    (:func:`mmmoma.compat.install_load_last`). The config may name it
    ``'StrictPretrained'`` or ``'mmpretrain.StrictPretrained'`` under any
    default scope (mmpretrain, mmseg) or none.

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


# Also in mmengine's root registry: without a default scope mmengine builds
# ``init_cfg`` types from the root, and a scope without its own entry (e.g.
# mmseg) falls back to its parent, the root. Registries are separate dicts,
# so this does not clash with the mmpretrain entry.
ROOT_WEIGHT_INITIALIZERS.register_module(module=StrictPretrained)


def is_strict_pretrained(init_cfg: object) -> bool:
    """Whether ``init_cfg`` is a ``StrictPretrained`` dict (any scope).

    Args:
        init_cfg (object): an ``init_cfg`` entry.

    Returns:
        bool: True for ``dict(type='StrictPretrained' | 'x.StrictPretrained',
        ...)``.
    """
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
    """Build ``StrictPretrained`` from ``init_cfg`` and load ``module``.

    Args:
        module (nn.Module): the module to load into.
        init_cfg (dict): a ``StrictPretrained`` cfg (``type`` is ignored).
    """
    kwargs = {key: value for key, value in init_cfg.items() if key != 'type'}
    StrictPretrained(**kwargs)(module)


def apply_strict_pretrained_cfgs(module: nn.Module,
                                 strict: List[dict]) -> None:
    """Apply ``strict`` cfgs to an initialised ``module``.

    Args:
        module (nn.Module): the module, after its ``init_weights``.
        strict (list[dict]): its ``StrictPretrained`` cfgs (from
            :func:`split_strict_pretrained`), applied in order.

    A failed load marks ``module`` uninitialised again, as a failing
    mmengine ``Pretrained`` does, so that calling ``init_weights`` once more
    (say with a corrected path) loads instead of warning and skipping.
    """
    try:
        for cfg in strict:
            apply_strict_pretrained(module, cfg)
    except BaseException:
        if isinstance(module, BaseModule):
            module.is_init = False
        raise
