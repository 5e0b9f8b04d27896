"""An ``init_cfg`` that loads pre-trained weights and fails loudly."""
import functools
import inspect
from typing import Any, Callable, List, Optional, Sequence

from mmengine.logging import MMLogger
from mmengine.model import BaseModule
from mmengine.registry import WEIGHT_INITIALIZERS as ROOT_WEIGHT_INITIALIZERS
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
    ViT's FFNs), and overrides such as ``VisionTransformer.init_weights``
    re-draw weights (``pos_embed``) after ``super().init_weights()``.
    Importing mmmoma makes any ``BaseModule``, top-level or a child, load
    its ``StrictPretrained`` after its whole ``init_weights``
    (:func:`install_load_last`). The config may name it
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


def _apply_all(module: nn.Module, strict: List[dict]) -> None:
    """Apply ``strict`` cfgs to an initialised ``module``.

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


def _load_last(init_weights: Callable) -> Callable:
    """Wrap a class's ``init_weights`` to apply ``StrictPretrained`` last.

    On the outermost call for an instance whose ``init_cfg`` holds a
    ``StrictPretrained`` entry, the entry is removed while the class's
    whole ``init_weights`` runs (its super() chain, mmengine's other
    ``init_cfg`` entries, the children, and any work the override does
    after ``super().init_weights()``), then put back and applied. The
    removal is also the re-entrancy guard: the wrapped ``init_weights`` of
    base classes in the super() chain, and of a child whose entry its
    parent has removed (:func:`install_load_last`), find no entry and just
    run. An already initialised instance is not loaded again (mmengine
    warns and skips a second ``init_weights``).
    """

    # updated=(): the wrapper must not inherit the wrapped function's marks
    @functools.wraps(init_weights, updated=())
    def wrapper(self: BaseModule, *args, **kwargs) -> Any:
        init_cfg = getattr(self, 'init_cfg', None)
        rest, strict = split_strict_pretrained(init_cfg)
        if not strict or getattr(self, 'is_init', False):
            return init_weights(self, *args, **kwargs)
        self.init_cfg = rest
        try:
            result = init_weights(self, *args, **kwargs)
        finally:
            self.init_cfg = init_cfg
        _apply_all(self, strict)
        return result

    wrapper._mmmoma_load_last = True
    return wrapper


def _wrap_init_weights(cls: type) -> None:
    """Wrap ``cls.init_weights`` with :func:`_load_last` if ``cls`` defines
    it (inherited ones are wrapped where defined). Idempotent."""
    init_weights = cls.__dict__.get('init_weights')
    if (inspect.isfunction(init_weights)
            and not getattr(init_weights, '_mmmoma_load_last', False)):
        setattr(cls, 'init_weights', _load_last(init_weights))


def _is_marked(func: Any, mark: str) -> bool:
    """Whether ``func`` or a function it wraps (``__wrapped__``) has
    ``mark`` set."""
    while func is not None:
        if getattr(func, mark, False):
            return True
        func = getattr(func, '__wrapped__', None)
    return False


def _defer_children(init_weights: Callable) -> Callable:
    """Wrap ``BaseModule.init_weights`` to apply children's
    ``StrictPretrained`` after the parent's mmengine ``init_weights``.

    This keeps a child's load after its siblings' initialisation and the
    parent's own mmengine ``Pretrained``, not only after its own
    ``init_weights``.
    """

    @functools.wraps(init_weights, updated=())
    def wrapper(self: BaseModule) -> None:
        deferred = []
        if not getattr(self, '_is_init', False):
            for child in self.children():
                init_cfg = getattr(child, 'init_cfg', None)
                rest, strict = split_strict_pretrained(init_cfg)
                if strict and not getattr(child, 'is_init', False):
                    child.init_cfg = rest
                    deferred.append((child, init_cfg, strict))
        try:
            init_weights(self)
        finally:
            for child, init_cfg, _ in deferred:
                child.init_cfg = init_cfg
        for child, _, strict in deferred:
            _apply_all(child, strict)

    wrapper._mmmoma_defers_children = True
    return wrapper


def install_load_last() -> None:
    """Make every ``BaseModule`` apply ``StrictPretrained`` last.

    * A parent removes each direct child's ``StrictPretrained`` entries
      while mmengine's ``BaseModule.init_weights`` runs (which calls the
      child's full ``init_weights``), then puts them back and applies them.
    * The ``init_weights`` of every ``BaseModule`` subclass that defines
      one (the classes already defined, and later ones through
      ``__init_subclass__``) applies the instance's own entries after the
      whole call (:func:`_load_last`), so a top-level module loads last too,
      whatever its override does after ``super().init_weights()`` (e.g.
      mmpretrain's ``VisionTransformer`` re-drawing ``pos_embed``).

    The behaviour lives on the classes, not on instances, so deep copies
    (EMA models) and pickled modules keep it. Idempotent.
    """
    # ``BaseModule.init_weights`` is also wrapped by ``_load_last`` below
    if not _is_marked(BaseModule.init_weights, '_mmmoma_defers_children'):
        BaseModule.init_weights = _defer_children(BaseModule.init_weights)

    previous = BaseModule.__dict__.get('__init_subclass__')
    if not getattr(getattr(previous, '__func__', previous),
                   '_mmmoma_load_last', False):

        def __init_subclass__(cls: type, **kwargs) -> None:
            if previous is not None:
                previous.__func__(cls, **kwargs)
            else:
                super(BaseModule, cls).__init_subclass__(**kwargs)
            _wrap_init_weights(cls)

        __init_subclass__._mmmoma_load_last = True
        BaseModule.__init_subclass__ = classmethod(__init_subclass__)

    # classes defined before this call (mmengine's, mmpretrain's, ...)
    pending, seen = [BaseModule], set()
    while pending:
        cls = pending.pop()
        if cls not in seen:
            seen.add(cls)
            _wrap_init_weights(cls)
            pending.extend(cls.__subclasses__())


install_load_last()
