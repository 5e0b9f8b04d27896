"""Compatibility fixes for the pinned OpenMMLab stack on a current PyTorch.

Every fix here is small, idempotent, applied when :mod:`mmmoma` is imported
(except :func:`setup_cpu_distributed`, which the training tools call), and has
a test in ``tests/test_compat.py``.

1. ``torch.load`` safe globals. Since torch 2.6, ``torch.load`` defaults to
   ``weights_only=True``. mmengine 0.10.7 calls ``torch.load`` without the
   argument, and its training checkpoints pickle a few non-tensor objects
   (``HistoryBuffer`` from the message hub, numpy arrays / scalars / dtypes),
   so ``--resume`` fails with "Weights only load failed". Instead of turning
   safe loading off, we allow-list exactly those classes with
   :func:`torch.serialization.add_safe_globals`; everything else is still
   refused. ``HistoryBuffer`` pickles its statistics methods as
   ``getattr(HistoryBuffer, 'min')``; rather than allowing the builtin
   ``getattr``, the name is bound to :func:`_history_buffer_getattr`, which
   resolves only those methods.
2. ``mmcv.adjust_hue`` under numpy >= 2. mmcv 2.1.0 shifts the hue channel
   by ``np.uint8(hue_factor * 255)``; numpy < 2 wrapped a negative shift
   around (-12 -> 244), numpy >= 2 raises ``OverflowError``, so
   ``ColorJitter(hue > 0)`` (MoCo v3, BYOL pipelines) crashes on about half
   of the images. :func:`_patch_adjust_hue` applies the same shift modulo 256
   for negative factors and leaves mmcv's code path for the others.
3. ``persistent_workers=True`` (mmpretrain's default) with ``num_workers=0``
   (what a laptop user sets with ``--cfg-options``) makes torch's DataLoader
   raise; :func:`drop_persistent_workers_without_workers` turns it off there.
4. Distributed training on a CPU-only machine (gloo). mmengine's
   ``init_dist('pytorch')`` calls ``torch.cuda.set_device`` unconditionally and
   the Runner gives DDP ``device_ids=[LOCAL_RANK]``, which DDP refuses for CPU
   modules. :func:`setup_cpu_distributed` initialises the gloo process group
   itself and sets ``model_wrapper_cfg.device_ids=None``.
5. Auto-resume trusts ``last_checkpoint`` blindly: mmengine's
   ``find_latest_checkpoint`` returns whatever path the file names (a
   deleted or partial checkpoint, then ``FileNotFoundError`` or a zip
   error). :func:`_patch_find_latest_checkpoint` makes the Runner use
   :func:`mmmoma.utils.checkpoint_files.find_resumable_checkpoint`: the
   pointed file if complete, else the newest complete checkpoint, with a
   warning.
6. Orphan dataloader workers: after ``kill -9`` of a training process its
   workers can live on (torch's watchdog only runs while a worker waits for
   work). :func:`_patch_worker_init` adds
   :func:`mmmoma.utils.dataloader_workers.exit_with_parent` to the
   ``worker_init_fn`` MMEngine gives every dataloader it builds.
7. ``StrictPretrained`` loaded first, then overwritten. mmengine's
   ``BaseModule.init_weights`` applies a module's ``init_cfg`` *before* its
   children's ``init_weights``, and overrides such as mmpretrain's
   ``VisionTransformer.init_weights`` re-draw weights (``pos_embed``) after
   ``super().init_weights()``; only mmengine's own ``Pretrained`` is
   deferred, so the weights a
   :class:`~mmmoma.checkpoints.strict_pretrained.StrictPretrained` init cfg
   loads would be overwritten (Swin's relative position tables, a ViT's
   FFNs, its ``pos_embed``). :func:`install_load_last` makes every
   ``BaseModule`` (the classes already defined and, through
   ``__init_subclass__``, later ones; a child or top-level) apply its
   ``StrictPretrained`` entries after its whole ``init_weights``, and a
   parent apply its children's after its own mmengine ``init_weights``.
   The behaviour lives on the classes, so deep copies (EMA models) and
   pickled modules keep it (pinned by
   ``tests/test_checkpoints/test_strict_pretrained.py``).
8.–10. Fixes for ``torch.compile`` and fused attention, in
   :mod:`mmmoma.compat_speed` (applied from here): mmcv ``DropPath``
   probabilities as Python floats, Swin window attention through SDPA, and
   eager data preprocessing / update in a compiled ``train_step``.
"""
import functools
import inspect
import logging
import os
import pickle
from typing import Any, Callable, List

import numpy as np
import torch
import torch.distributed as torch_dist

from .compat_speed import install_speed_fixes

__all__ = [
    'checkpoint_safe_globals', 'drop_persistent_workers_without_workers',
    'install_load_last', 'setup_cpu_distributed'
]


def checkpoint_safe_globals() -> List[object]:
    """Classes / functions an mmengine training checkpoint needs to unpickle.

    Returns:
        list: objects passed to :func:`torch.serialization.add_safe_globals`.
    """
    from mmengine.logging import HistoryBuffer
    numpy_core = getattr(np, '_core', None) or np.core
    safe: List[object] = [
        HistoryBuffer,
        np.ndarray,
        np.dtype,
        numpy_core.multiarray._reconstruct,
        numpy_core.multiarray.scalar,
    ]
    # numpy >= 1.25 pickles dtypes as instances of per-type classes.
    dtypes_module = getattr(np, 'dtypes', None)
    if dtypes_module is not None:
        safe += [
            getattr(dtypes_module, name) for name in dir(dtypes_module)
            if name.endswith('DType')
        ]
    return safe


def _history_buffer_getattr(owner: object, name: str) -> object:
    """``getattr`` restricted to ``HistoryBuffer``'s statistics methods."""
    from mmengine.logging import HistoryBuffer
    if owner is HistoryBuffer and name in ('min', 'max', 'current', 'mean'):
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(
        f'mmmoma safe loading: getattr({owner!r}, {name!r}) is not allowed; '
        'only HistoryBuffer statistics methods are')


def _allow_checkpoint_globals() -> None:
    add_safe_globals = getattr(torch.serialization, 'add_safe_globals', None)
    if add_safe_globals is not None:  # torch >= 2.4
        add_safe_globals(checkpoint_safe_globals())
        add_safe_globals([(_history_buffer_getattr, 'builtins.getattr')])


def _shift_hue(img: np.ndarray, hue_factor: float, backend: str) -> np.ndarray:
    """mmcv's hue shift, wrapping negative shifts as numpy < 2 did."""
    import cv2
    from PIL import Image
    shift = int(hue_factor * 255) % 256
    if backend == 'pillow':
        rgb = Image.fromarray(np.ascontiguousarray(img[..., ::-1]), 'RGB')
        hue, sat, val = rgb.convert('HSV').split()
        hue = Image.fromarray(
            ((np.asarray(hue, np.int32) + shift) % 256).astype(np.uint8), 'L')
        shifted = Image.merge('HSV', (hue, sat, val)).convert('RGB')
        return np.array(shifted, dtype=img.dtype)[..., ::-1]
    hsv = cv2.cvtColor(img.astype(np.uint8), cv2.COLOR_BGR2HSV_FULL)
    hsv[..., 0] = ((hsv[..., 0].astype(np.int32) + shift) % 256).astype(
        np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR_FULL).astype(img.dtype)


def _patch_adjust_hue() -> None:
    import mmcv
    import mmcv.image
    import mmcv.image.photometric as photometric
    original = photometric.adjust_hue
    if getattr(original, 'mmmoma_patched', False):
        return

    def adjust_hue(img: np.ndarray, hue_factor: float, backend=None):
        if hue_factor >= 0 or not -0.5 <= hue_factor:
            return original(img, hue_factor, backend)  # incl. its errors
        backend = backend or photometric.imread_backend
        if backend not in ('cv2', 'pillow') or not isinstance(
                img, np.ndarray) or img.ndim != 3:
            return original(img, hue_factor, backend)
        return _shift_hue(img, hue_factor, backend)

    adjust_hue.__doc__ = original.__doc__
    adjust_hue.mmmoma_patched = True
    adjust_hue.original = original
    for module in (mmcv, mmcv.image, photometric):
        module.adjust_hue = adjust_hue


def drop_persistent_workers_without_workers(cfg) -> None:
    """Set ``persistent_workers=False`` in dataloaders with no workers.

    Args:
        cfg (Config): a config; its train / val / test dataloaders are fixed
            in place.
    """
    for field in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg.get(field)
        if loader and not loader.get('num_workers', 0):
            loader['persistent_workers'] = False


def amp_to_fp32_without_gpu(cfg) -> bool:
    """Train an AMP config in fp32 when no GPU is available.

    mmengine's ``AmpOptimWrapper`` refuses to run without a GPU, so the
    papers' ``*-amp-*`` configs could not be tried on a laptop. Without CUDA
    this turns ``optim_wrapper.type='AmpOptimWrapper'`` into
    ``'OptimWrapper'`` (dropping ``loss_scale`` / ``dtype`` / ``use_fsdp``,
    which only AMP takes) and warns; with CUDA it does nothing.

    Args:
        cfg (Config): a training config, fixed in place.

    Returns:
        bool: True when the config was changed.
    """
    optim_wrapper = cfg.get('optim_wrapper')
    if torch.cuda.is_available() or not optim_wrapper or \
            optim_wrapper.get('type') != 'AmpOptimWrapper':
        return False
    optim_wrapper['type'] = 'OptimWrapper'
    dropped = [key for key in ('loss_scale', 'dtype', 'use_fsdp')
               if optim_wrapper.pop(key, None) is not None]
    from mmengine.logging import print_log
    print_log(
        'optim_wrapper: no GPU, so AmpOptimWrapper (mixed precision) is '
        'replaced by OptimWrapper (fp32)' +
        (f'; dropped {", ".join(dropped)}' if dropped else ''),
        logger='current', level=logging.WARNING)
    return True


def setup_cpu_distributed(cfg, launcher: str) -> bool:
    """Prepare gloo distributed training when no GPU is available.

    Must be called before the Runner is built. It does nothing when CUDA is
    available or when ``launcher == 'none'``.

    Args:
        cfg (Config): the training config; ``model_wrapper_cfg`` is set to
            ``MMDistributedDataParallel`` with ``device_ids=None`` unless the
            config already sets ``device_ids``.
        launcher (str): 'none', 'pytorch', 'slurm' or 'mpi'.

    Returns:
        bool: True when a CPU (gloo) process group was set up.
    """
    if launcher == 'none' or torch.cuda.is_available():
        return False
    if launcher != 'pytorch':
        raise ValueError(
            f'CPU-only distributed training supports launcher="pytorch" '
            f'(torchrun), got launcher={launcher!r}')
    if not torch_dist.is_initialized():
        torch_dist.init_process_group(
            backend='gloo',
            rank=int(os.environ['RANK']),
            world_size=int(os.environ['WORLD_SIZE']))
    wrapper_cfg = dict(cfg.get('model_wrapper_cfg') or {})
    wrapper_cfg.setdefault('type', 'MMDistributedDataParallel')
    wrapper_cfg.setdefault('device_ids', None)
    cfg.model_wrapper_cfg = wrapper_cfg
    return True


def finish_distributed() -> None:
    """End a distributed run cleanly: wait for every rank, then destroy the
    process group. Does nothing outside distributed runs.

    Without it a rank that finishes first (e.g. rank 1 while rank 0 still
    writes the last checkpoint) exits with gloo's background threads still
    running, and the C++ runtime aborts it ("terminate called without an
    active exception", SIGABRT), failing the whole torchrun job.
    """
    if torch_dist.is_available() and torch_dist.is_initialized():
        torch_dist.barrier()
        torch_dist.destroy_process_group()


def _patch_find_latest_checkpoint() -> None:
    import mmengine.runner.runner as runner_module

    from mmmoma.utils.checkpoint_files import find_resumable_checkpoint
    if getattr(runner_module.find_latest_checkpoint, 'mmmoma_patched',
               False):
        return

    def find_latest_checkpoint(path: str):
        return find_resumable_checkpoint(path)

    find_latest_checkpoint.mmmoma_patched = True
    find_latest_checkpoint.original = runner_module.find_latest_checkpoint
    runner_module.find_latest_checkpoint = find_latest_checkpoint


def _patch_worker_init() -> None:
    import mmengine.runner.runner as runner_module

    from mmmoma.utils.dataloader_workers import \
        mmengine_worker_init_exiting_with_parent
    runner_module.default_worker_init_fn = \
        mmengine_worker_init_exiting_with_parent


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
    from mmmoma.checkpoints.strict_pretrained import (
        apply_strict_pretrained_cfgs, split_strict_pretrained)

    # updated=(): the wrapper must not inherit the wrapped function's marks
    @functools.wraps(init_weights, updated=())
    def wrapper(self: torch.nn.Module, *args, **kwargs) -> Any:
        init_cfg = getattr(self, 'init_cfg', None)
        rest, strict = split_strict_pretrained(init_cfg)
        if not strict or getattr(self, 'is_init', False):
            return init_weights(self, *args, **kwargs)
        self.init_cfg = rest
        try:
            result = init_weights(self, *args, **kwargs)
        finally:
            self.init_cfg = init_cfg
        apply_strict_pretrained_cfgs(self, strict)
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
    from mmmoma.checkpoints.strict_pretrained import (
        apply_strict_pretrained_cfgs, split_strict_pretrained)

    @functools.wraps(init_weights, updated=())
    def wrapper(self: torch.nn.Module) -> None:
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
            apply_strict_pretrained_cfgs(child, strict)

    wrapper._mmmoma_defers_children = True
    return wrapper


def install_load_last() -> None:
    """Make every ``BaseModule`` apply ``StrictPretrained`` last (fix #7).

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
    from mmengine.model import BaseModule

    # Fully imported before the hook is installed: importing it defines
    # BaseModule subclasses (mmpretrain's models), which the walk below wraps.
    import mmmoma.checkpoints.strict_pretrained  # noqa: F401

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


_allow_checkpoint_globals()
_patch_adjust_hue()
install_speed_fixes()
_patch_find_latest_checkpoint()
_patch_worker_init()
install_load_last()
