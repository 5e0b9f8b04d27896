"""Training cost of self-supervised configs, side by side with mmpretrain's
MAE and MoCo v3 at the same ViT size.

For every config (and, unless ``--no-baselines``, mmpretrain's MAE and MoCo v3
configs) the tool

1. rewrites the config to the requested ViT (``--arch``, ``--img-size``,
   ``--patch-size``; see :func:`override_model_size` and
   :func:`override_pipeline_size` for exactly which fields change; every
   ViT-based module gets the same arch, frozen teachers included),
2. with ``--random-teachers``, points every checkpoint the model reads when
   it is built or initialised (``FrozenTeacher`` checkpoints, e.g. MOMA's
   ``teachers.<name>.teacher.checkpoint``, and ``StrictPretrained`` init
   checkpoints) at a randomly initialised checkpoint of the overridden arch
   in a temporary folder, and prints each replacement (see
   :func:`write_random_stand_in_checkpoints`); without it those files must
   exist (and fit the arch),
3. builds the model and calls ``init_weights`` as MMEngine's Runner does,
4. builds one real training batch: the config's own train pipeline (without
   ``LoadImageFromFile``) on synthetic uint8 images, collated by the config's
   ``collate_fn``, so multi-view pipelines give the model what it expects,
5. counts the FLOPs of one full training step (``model.train_step`` with an
   ``OptimWrapper``: forward + backward; see :mod:`mmmoma.utils.flops` for the
   counting convention, attention included on every device; forwards run
   under ``torch.no_grad``, such as frozen teachers, are counted, and add no
   backward), and separately the FLOPs of the attention matmuls alone (the
   ``scaled_dot_product_attention`` kernels, ``Q·Kᵀ`` and ``P·V``, forward +
   backward; the q / k / v and output projections are not part of it),
6. times ``--steps`` further steps after ``--warmup`` steps (median; CUDA is
   synchronised around each step) and reads the peak GPU memory.

FLOPs are reported per sample of the batch (a MoCo v3 sample is two crops) and
as a multiple of F, the forward FLOPs per image of a plain mmpretrain
``VisionTransformer`` of the same arch, patch and image size. The table
compares every row with the mmpretrain MAE row (FLOPs, time) and the
mmpretrain MoCo v3 row (FLOPs, attention FLOPs).

``--sweep KEY=V1,V2,...`` benchmarks every CONFIG once per value, with
``KEY=value`` added to its ``--cfg-options`` (values are parsed as
``--cfg-options`` parses them); rows are named ``CONFIG [LAST_KEY=value]``.
The baselines are not swept. For M-MoCo / M-BYOL rows (``MaskedMoCoV3`` /
``MaskedBYOL``) a summary follows the table: the step and attention FLOPs of
each chunk count n relative to the n = 1 row of the same config and to MoCo
v3, next to the paper's claim, and where the difference comes from (see
:func:`format_chunking_summary`).

Example (the README's ViT-B/16 figures)::

    python tools/analysis/benchmark.py --arch b --img-size 224 \
        --batch-size 2 --steps 3 --warmup 1 --device cpu

SdAE's four teacher inputs (the paper's Table 1) next to MAE and MoCo v3::

    python tools/analysis/benchmark.py configs/sdae/sdae-*_in1k.py \
        --arch b --img-size 224 --batch-size 2 --steps 3 --warmup 1 \
        --device cpu

MOMA (one ViT-B teacher, ViT-B student at 90 % mask) next to MAE and MoCo v3,
without the teacher / student checkpoint files::

    python tools/analysis/benchmark.py CONFIG --random-teachers --arch b \
        --img-size 224 --batch-size 2 --steps 2 --warmup 1 --device cpu

MimCo (ViT-B/16 student on the full masked sequence, frozen ViT-B/16
teacher) next to MAE and MoCo v3 (the tool compares ViTs at one arch; the
Swin configs are refused with an error saying so)::

    python tools/analysis/benchmark.py \
        configs/mimco/mimco_vit-base-p16_8xb256-amp-coslr-100e_in1k.py \
        --random-teachers --arch b --img-size 224 --batch-size 2 --steps 3 \
        --warmup 1 --device cpu

M-MoCo's chunking savings: the online encoder in n = 1, 2, 4, 8 chunks, next
to MAE and MoCo v3, with the summary against the paper's claim::

    python tools/analysis/benchmark.py \
        configs/mmoco/mmoco_vit-base-p16_8xb512-amp-coslr-300e_in1k.py \
        --sweep model.num_chunks=1,2,4,8 --arch b --img-size 224 \
        --batch-size 2 --steps 2 --warmup 1 --device cpu
"""
import argparse
import ast
import copy
import gc
import json
import logging
import os.path as osp
import re
import statistics
import sys
import tempfile
import textwrap
import time
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmengine.config import Config, DictAction
from mmengine.logging import MessageHub, MMLogger
from mmengine.model import revert_sync_batchnorm
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from mmengine.runner import set_random_seed
from mmengine.utils import ProgressBar

import mmmoma  # noqa: F401  (registers components, applies compat fixes)
from mmmoma.utils.config_tools import (CROP_SIZE_KEYS, find_train_pipeline,
                                       load_config, override_pipeline_size,
                                       walk_dicts)
from mmmoma.utils.flops import (FlopBreakdown, count_flop_breakdown,
                                train_step_flop_breakdown)

#: (key of the ``--KEY-cfg-options`` argument, row name, config)
BASELINE_CONFIGS: Tuple[Tuple[str, str, str], ...] = (
    ('mae', 'mmpretrain MAE',
     'mmpretrain::mae/mae_vit-base-p16_8xb512-amp-coslr-300e_in1k.py'),
    ('mocov3', 'mmpretrain MoCo v3',
     'mmpretrain::mocov3/mocov3_vit-base-p16_16xb256-amp-coslr-300e_in1k.py'),
)

VIT_ARCH_KEYS = ('embed_dims', 'num_layers', 'num_heads',
                 'feedforward_channels')
#: Archs that ``MoCoV3ViT`` adds to the ViT arch zoo when it is constructed.
EXTRA_VIT_ARCHS: Dict[str, Dict[str, int]] = dict.fromkeys(
    ['mocov3-s', 'mocov3-small'],
    dict(embed_dims=384, num_layers=12, num_heads=12,
         feedforward_channels=1536))
#: Keys of non-ViT model modules (necks, heads, decoders) that hold the ViT
#: width; a value equal to an old ViT width is replaced by the new width.
WIDTH_KEYS = ('in_channels', 'embed_dim', 'embed_dims', 'in_dims',
              'out_dims')
SKIPPED_TRANSFORMS = ('LoadImageFromFile', )
#: Model types whose online encoder sees its views in chunks (M-MoCo,
#: M-BYOL): the table is followed by :func:`format_chunking_summary`.
CHUNKED_MODEL_TYPES = ('MaskedMoCoV3', 'MaskedBYOL')
#: What the M-MoCo paper says chunking saves (abstract; Fig. 3a).
PAPER_CHUNKING_CLAIM = (
    'M-MoCo paper (abstract, Fig. 3a): "for each epoch we save around 20% '
    'FLOPs" vs MoCo v3; the attention module\'s FLOPs drop steadily with n, '
    'the whole block\'s (Att + FFN) "somewhat less"')


@dataclass
class BenchmarkSettings:
    """What every row of one run shares."""
    arch: Dict[str, int]
    arch_name: str
    img_size: int
    patch_size: int
    batch_size: int
    device: str
    steps: int
    warmup: int
    amp: bool
    seed: int = 0
    random_teachers: bool = False


@dataclass
class BenchmarkRow:
    """One config's training cost.

    Attributes:
        name: Row label (baseline name or config file stem).
        config: The config path as given.
        train_gflops_per_image: FLOPs of one training step (forward +
            backward) divided by the batch size, in GFLOPs.
        flops_ratio: ``train_gflops_per_image`` in units of F.
        attention_gflops_per_image: The part of ``train_gflops_per_image``
            spent in the attention kernels (``Q·Kᵀ``, ``P·V``; forward +
            backward).
        attention_backward_gflops_per_image: The backward part of
            ``attention_gflops_per_image``: twice the forward attention of
            the modules that are trained, so the trained modules' attention
            is 1.5 times this, the rest is that of modules run without
            gradient (momentum encoders, frozen teachers).
        step_time_s: Median wall time of one ``train_step`` (seconds).
        images_per_s: ``batch_size / step_time_s``.
        peak_memory_mib: Peak allocated GPU memory while timing (MiB), None
            on the CPU.
        overrides: The config fields that the size overrides rewrote.
        cfg_options: The ``--cfg-options`` given for this config.
        stand_in_checkpoints: The ``checkpoint`` fields (teachers,
            ``StrictPretrained`` inits) that ``--random-teachers`` pointed
            at random weights.
        sweep: The ``--sweep`` field and value of this row (empty if none).
        model_type: Class name of the built model, e.g. ``MaskedMoCoV3``.
        num_chunks: The built model's ``num_chunks`` (M-MoCo's n), None for
            models without one.
        num_target_chunks: The built model's ``num_target_chunks`` (m).
    """
    name: str
    config: str
    train_gflops_per_image: float
    flops_ratio: float
    attention_gflops_per_image: float
    attention_backward_gflops_per_image: float
    step_time_s: float
    images_per_s: float
    peak_memory_mib: Optional[float]
    overrides: List[str] = field(default_factory=list)
    cfg_options: Dict[str, Any] = field(default_factory=dict)
    stand_in_checkpoints: List[str] = field(default_factory=list)
    sweep: Dict[str, Any] = field(default_factory=dict)
    model_type: str = ''
    num_chunks: Optional[int] = None
    num_target_chunks: Optional[int] = None


@dataclass
class BenchmarkResult:
    """Everything one run measured.

    Attributes:
        settings: What every row shares.
        reference_forward_gflops: F, GFLOPs of a plain ViT forward per image.
        reference_attention_gflops: The attention kernels' part of F.
        rows: One per benchmarked config (and sweep value).
    """
    settings: BenchmarkSettings
    reference_forward_gflops: float
    reference_attention_gflops: float
    rows: List[BenchmarkRow]


# ----------------------------------------------------------------------------
# Config rewriting
# ----------------------------------------------------------------------------
def _vit_base_class() -> type:
    from mmpretrain.models import VisionTransformer
    return VisionTransformer


def resolve_vit_arch(arch: Union[str, Dict[str, int]]) -> Dict[str, int]:
    """The explicit ViT arch dict of an arch name or dict.

    Args:
        arch: A name of mmpretrain's ``VisionTransformer.arch_zoo`` ('b',
            'base', 'l', 'deit-s', ...) or MoCo v3's 'mocov3-small', or a dict
            with the keys ``embed_dims, num_layers, num_heads,
            feedforward_channels``.

    Returns:
        A new dict with exactly those four keys.
    """
    if isinstance(arch, str):
        zoo = {**_vit_base_class().arch_zoo, **EXTRA_VIT_ARCHS}
        if arch.lower() not in zoo:
            raise ValueError(f'--arch: unknown ViT arch {arch!r}; allowed '
                             f'names: {sorted(zoo)} or a dict with keys '
                             f'{list(VIT_ARCH_KEYS)}')
        return {key: zoo[arch.lower()][key] for key in VIT_ARCH_KEYS}
    if not isinstance(arch, dict) or set(arch) != set(VIT_ARCH_KEYS):
        raise ValueError(f'--arch: a custom ViT arch must be a dict with '
                         f'exactly the keys {list(VIT_ARCH_KEYS)}, '
                         f'got {arch!r}')
    if arch['embed_dims'] % arch['num_heads']:
        raise ValueError(f'--arch: embed_dims {arch["embed_dims"]} is not '
                         f'divisible by num_heads {arch["num_heads"]}')
    return {key: int(arch[key]) for key in VIT_ARCH_KEYS}


def parse_arch(text: str) -> Union[str, Dict[str, int]]:
    """Parse ``--arch``: a name, or a Python / JSON dict literal."""
    if text.lstrip().startswith('{'):
        try:
            return ast.literal_eval(text)
        except (ValueError, SyntaxError) as error:
            raise argparse.ArgumentTypeError(
                f'--arch: cannot parse dict {text!r}: {error}') from error
    return text


def _registered_class(type_name: Any) -> Optional[type]:
    """The class a config ``type`` refers to in the model registry."""
    if isinstance(type_name, type):
        return type_name
    if not isinstance(type_name, str):
        return None
    from mmpretrain.registry import MODELS
    return MODELS.get(type_name)


_MISSING = object()


def _init_default(cls: type, name: str) -> Any:
    """The default of constructor argument ``name`` of ``cls`` (following
    ``**kwargs`` up the MRO); ``_MISSING`` if no class in the MRO declares
    it, None if it is declared without a default."""
    import inspect
    for klass in cls.__mro__:
        if klass is object:
            break
        parameter = inspect.signature(klass.__init__).parameters.get(name)
        if parameter is not None:
            if parameter.default is inspect.Parameter.empty:
                return None
            return parameter.default
    return _MISSING


def override_model_size(model_cfg: Dict[str, Any], arch: Dict[str, int],
                        img_size: int, patch_size: int) -> List[str]:
    """Rewrite a model config in place to one ViT arch / patch / image size.

    Rules:

    * every dict whose ``type`` is a subclass of mmpretrain's
      ``VisionTransformer`` (MAEViT, MoCoV3ViT, our masked ViT, teachers)
      gets ``arch``, ``img_size`` and ``patch_size`` (its nested dicts are left
      alone);
    * in every other dict, for keys the dict sets or its registered class
      accepts (constructor defaults count as set): ``patch_size`` and
      ``img_size`` are set; ``num_patches`` (MAE decoder) becomes
      ``(img_size // patch_size) ** 2``; a width key (:data:`WIDTH_KEYS`)
      whose value equals the width of one of the original ViTs becomes the
      new width (MAE decoder ``embed_dim``, MoCo v3 projector
      ``in_channels``). Widths of other modules (the MAE decoder's 512, the
      projector's 4096) stay as configured.

    Args:
        model_cfg: The ``model`` dict of a config.
        arch: New ViT arch, as returned by :func:`resolve_vit_arch`.
        img_size: New input size (square images).
        patch_size: New patch size; must divide ``img_size``.

    Returns:
        The rewritten fields, as ``path: old -> new`` strings.
    """
    if img_size % patch_size:
        raise ValueError(f'--img-size {img_size} is not divisible by '
                         f'--patch-size {patch_size}')
    vit_class = _vit_base_class()
    changes: List[str] = []
    old_widths = set()
    vit_paths = []

    def assign(path: str, node: Dict[str, Any], key: str, value: Any) -> None:
        if node.get(key) != value:
            changes.append(f'{path}.{key}: {node.get(key)!r} -> {value!r}')
            node[key] = value

    for path, node in list(walk_dicts(model_cfg, 'model')):
        cls = _registered_class(node.get('type'))
        if cls is None or not issubclass(cls, vit_class) or any(
                path.startswith(vit_path + '.') for vit_path in vit_paths):
            continue
        vit_paths.append(path)
        old_arch = node.get('arch', _init_default(cls, 'arch'))
        if isinstance(old_arch, str):
            zoo = {**cls.arch_zoo, **EXTRA_VIT_ARCHS}
            if old_arch.lower() not in zoo:
                raise ValueError(f'{path}.arch: unknown arch {old_arch!r}')
            old_arch = zoo[old_arch.lower()]
        old_widths.add(old_arch['embed_dims'])
        assign(path, node, 'arch', dict(arch))
        assign(path, node, 'img_size', img_size)
        assign(path, node, 'patch_size', patch_size)
    if not vit_paths:
        raise ValueError('the config\'s model has no VisionTransformer-based '
                         'module, so --arch / --img-size / --patch-size '
                         'cannot be applied to it')

    num_patches = (img_size // patch_size)**2
    for path, node in list(walk_dicts(model_cfg, 'model')):
        if any(path == vit_path or path.startswith(vit_path + '.')
               for vit_path in vit_paths):
            continue
        cls = _registered_class(node.get('type'))

        def current(key: str) -> Any:
            """The value in the config, else the constructor default."""
            if key in node:
                return node[key]
            return _MISSING if cls is None else _init_default(cls, key)

        for key, value in (('patch_size', patch_size),
                           ('img_size', img_size),
                           ('num_patches', num_patches)):
            if current(key) is not _MISSING:
                assign(path, node, key, value)
        for key in WIDTH_KEYS:
            if current(key) in old_widths:
                assign(path, node, key, arch['embed_dims'])
    return changes


#: One ``--sweep`` setting: (dotted config key, value).
SweepValue = Tuple[str, Any]


def parse_sweep(text: str) -> Tuple[str, List[Any]]:
    """Parse ``--sweep KEY=V1,V2,...`` into the key and its values.

    The values are parsed as ``--cfg-options`` parses a value (MMEngine's
    ``DictAction``: ints, floats, bools, None, strings, ``[...]`` / ``(...)``
    literals); a single value is a sweep of one. A list value is written in
    brackets: ``KEY=[[1,2],[3,4]]`` sweeps ``[1, 2]`` and ``[3, 4]``.

    Args:
        text: The argument, e.g. ``'model.num_chunks=1,2,4,8'``.

    Returns:
        The key and the list of values, e.g.
        ``('model.num_chunks', [1, 2, 4, 8])``.
    """
    key, separator, values_text = text.partition('=')
    key = key.strip()
    if not separator or not key or not values_text.strip():
        raise argparse.ArgumentTypeError(
            f'--sweep: expected KEY=V1,V2,... (e.g. '
            f'model.num_chunks=1,2,4,8), got {text!r}')
    try:
        values = DictAction._parse_iterable(values_text)
    except (AssertionError, RecursionError, ValueError) as error:
        raise argparse.ArgumentTypeError(
            f'--sweep: cannot parse the values {values_text!r} of {key} '
            f'(write lists in brackets: [[1,2],[3,4]]): {error!r}') from error
    values = list(values) if isinstance(values, (list, tuple)) else [values]
    texts = [repr(value) for value in values]
    if len(set(texts)) != len(texts):
        raise argparse.ArgumentTypeError(
            f'--sweep: the values of {key} repeat: {values!r}')
    return key, values


def check_config_key(cfg: Config, key: str, name: str) -> None:
    """Raise a ValueError unless ``key`` (dotted, as in ``--cfg-options``)
    names a field of ``cfg``.

    A field counts if the config sets it, or if it is the last part of the
    key and the dict it would go into has a registered ``type`` whose
    constructor takes it (e.g. ``model.num_chunks`` of a model that relies
    on ``MaskedMoCoV3``'s default). List items are addressed by index
    (``train_dataloader.dataset.pipeline.1.mode``).

    Args:
        cfg: The loaded config.
        key: The dotted key.
        name: The config, as named in the error.
    """
    node: Any = cfg.to_dict()
    path = ''
    parts = key.split('.')
    for depth, part in enumerate(parts):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, (list, tuple)) and part.isdigit() and \
                int(part) < len(node):
            node = node[int(part)]
        else:
            if depth == len(parts) - 1 and isinstance(node, dict):
                cls = _registered_class(node.get('type'))
                if cls is not None and \
                        _init_default(cls, part) is not _MISSING:
                    return
                if cls is not None:
                    raise ValueError(
                        f'--sweep: {name} has no field {key!r}: '
                        f'{path or "the config"} sets no {part!r} and its '
                        f'type {cls.__name__} takes no such argument')
            raise ValueError(
                f'--sweep: {name} has no field {key!r}: no {part!r} in '
                f'{path or "the config"}' +
                (f' (its keys: {sorted(node)})' if isinstance(node, dict)
                 else ''))
        path = f'{path}.{part}' if path else part


def sweep_row_name(name: str, key: str, value: Any) -> str:
    """``'NAME [LAST_KEY=value]'``, e.g. ``'mmoco [num_chunks=4]'``."""
    return f'{name} [{key.rsplit(".", 1)[-1]}={value}]'


# ----------------------------------------------------------------------------
# Checkpoints the model loads at build / init time
# ----------------------------------------------------------------------------
@dataclass
class CheckpointReference:
    """A checkpoint file that building or initialising the model reads.

    Attributes:
        field: Config path of the ``checkpoint`` field, e.g.
            ``model.teachers.mocov3.teacher.checkpoint``.
        holder: The dict holding the ``checkpoint`` key (a ``FrozenTeacher``
            config or a ``StrictPretrained`` init config), edited in place.
        module_cfg: Config of the module the weights are loaded into (the
            teacher ``network``, or the module owning the ``init_cfg``).
    """
    field: str
    holder: Dict[str, Any]
    module_cfg: Dict[str, Any]


def _frozen_teacher_class() -> type:
    from mmmoma.models.utils import FrozenTeacher
    return FrozenTeacher


def _is_frozen_teacher_cfg(path: str, node: Dict[str, Any]) -> bool:
    """Whether ``node`` configures a ``FrozenTeacher``: its ``type`` is one,
    or it is an untyped ``teacher`` dict with ``network`` and ``checkpoint``
    (MOMA's ``teachers.<name>.teacher``, built as a ``FrozenTeacher`` by the
    algorithm)."""
    if 'type' not in node:
        return path.endswith('.teacher') and 'network' in node \
            and 'checkpoint' in node
    cls = _registered_class(node.get('type'))
    return cls is not None and issubclass(cls, _frozen_teacher_class())


def find_checkpoint_references(
        model_cfg: Dict[str, Any]) -> List[CheckpointReference]:
    """Every teacher checkpoint (:func:`_is_frozen_teacher_cfg`) and every
    ``StrictPretrained`` init checkpoint (``init_cfg`` a dict or a list of
    dicts) in a model config, depth first."""
    references = []
    for path, node in walk_dicts(model_cfg, 'model'):
        if _is_frozen_teacher_cfg(path, node):
            if not isinstance(node.get('network'), dict):
                raise ValueError(f'{path}.network: a FrozenTeacher needs a '
                                 'network config dict')
            references.append(
                CheckpointReference(f'{path}.checkpoint', node,
                                    node['network']))
        init_cfgs = node.get('init_cfg')
        init_list = init_cfgs if isinstance(init_cfgs,
                                            (list, tuple)) else [init_cfgs]
        for index, init_cfg in enumerate(init_list):
            if isinstance(init_cfg, dict) and \
                    init_cfg.get('type') == 'StrictPretrained':
                where = f'{path}.init_cfg' + (
                    f'[{index}]' if init_list is init_cfgs else '')
                references.append(
                    CheckpointReference(f'{where}.checkpoint', init_cfg,
                                        node))
    return references


def check_checkpoints_exist(model_cfg: Dict[str, Any], name: str) -> None:
    """Raise a FileNotFoundError naming every referenced checkpoint file
    (:func:`find_checkpoint_references`) that does not exist."""
    missing = [
        f'{reference.field}={reference.holder.get("checkpoint")!r}'
        for reference in find_checkpoint_references(model_cfg)
        if not (isinstance(reference.holder.get('checkpoint'), str)
                and osp.isfile(reference.holder['checkpoint']))
    ]
    if missing:
        raise FileNotFoundError(
            f'{name}: checkpoint file(s) not found: {"; ".join(missing)}. '
            'Pass --random-teachers to benchmark with random stand-in '
            'weights (FLOPs and time do not depend on the weights).')


def write_random_stand_in_checkpoints(model_cfg: Dict[str, Any],
                                      out_dir: str,
                                      seed: int = 0) -> List[str]:
    """Point every teacher / ``StrictPretrained`` checkpoint of a model
    config at a randomly initialised checkpoint of the right architecture.

    For each reference of :func:`find_checkpoint_references`, the module it
    loads into is built from its config as it stands (so after
    :func:`override_model_size`: the overridden arch), without its
    ``init_cfg``, randomly initialised (``init_weights``), and its state dict
    is saved as a backbone-only file (``save_backbone_checkpoint``; such
    files are read whatever ``prefix`` / ``checkpoint_prefix`` says). The
    ``checkpoint`` field is then set to that file, in place.

    Args:
        model_cfg: The ``model`` dict of a config.
        out_dir: Folder for the stand-in files (e.g. a temporary folder that
            outlives building and initialising the model).
        seed: Seed of the random weights.

    Returns:
        The rewritten fields, as ``field: old -> new`` strings.
    """
    from mmpretrain.registry import MODELS

    from mmmoma.models.utils.checkpoint_formats import save_backbone_checkpoint
    changes = []
    for index, reference in enumerate(find_checkpoint_references(model_cfg)):
        module_cfg = copy.deepcopy(reference.module_cfg)
        module_cfg['init_cfg'] = None
        torch.manual_seed(seed + index)
        module = MODELS.build(module_cfg)
        if hasattr(module, 'init_weights'):
            module.init_weights()
        stem = re.sub(r'[^A-Za-z0-9]+', '_', reference.field).strip('_')
        path = osp.join(out_dir, f'{index}_{stem}.pth')
        save_backbone_checkpoint(
            module.state_dict(), path,
            meta=dict(stand_in='random', field=reference.field))
        del module
        old = reference.holder.get('checkpoint')
        reference.holder['checkpoint'] = path
        changes.append(f'{reference.field}: {old!r} -> {path!r}')
    return changes


# ----------------------------------------------------------------------------
# Batch, model, measurement
# ----------------------------------------------------------------------------
def build_train_batch(cfg: Config, batch_size: int, img_size: int,
                      seed: int) -> Dict[str, Any]:
    """One collated training batch from the config's train pipeline.

    The pipeline (minus ``LoadImageFromFile``) runs on random uint8 BGR images
    of ``8/7 · img_size`` pixels (the 256 → 224 ratio); the samples are
    collated by the config's ``train_dataloader.collate_fn`` (default
    ``pseudo_collate``, as in MMEngine's Runner).

    Returns:
        What the dataloader would yield (``inputs``, ``data_samples``).
    """
    from mmengine.registry import FUNCTIONS
    from mmpretrain.registry import TRANSFORMS
    pipeline = [
        TRANSFORMS.build(transform) for transform in find_train_pipeline(cfg)
        if transform.get('type') not in SKIPPED_TRANSFORMS
    ]
    rng = np.random.default_rng(seed)
    source_size = max(img_size, round(img_size * 8 / 7))
    samples = []
    for index in range(batch_size):
        image = rng.integers(0, 256, (source_size, source_size, 3),
                             dtype=np.uint8)
        results = dict(
            img=image,
            img_shape=image.shape[:2],
            ori_shape=image.shape[:2],
            img_path=f'synthetic_{index}.png',
            sample_idx=index)
        for transform in pipeline:
            results = transform(results)
            if results is None:
                raise RuntimeError(f'train pipeline transform {transform!r} '
                                   'dropped a synthetic sample')
        samples.append(results)

    collate_cfg = copy.deepcopy(
        cfg.train_dataloader.get('collate_fn', dict(type='pseudo_collate')))
    collate_cfg.pop('_scope_', None)  # added to configs inheriting pkg::
    collate_type = collate_cfg.pop('type')
    collate = FUNCTIONS.get(collate_type) if isinstance(
        collate_type, str) else collate_type
    if collate is None:
        raise ValueError(f'train_dataloader.collate_fn: unknown type '
                         f'{collate_type!r}')
    return partial(collate, **collate_cfg)(samples)


def _image_sizes(inputs: Any) -> List[Tuple[int, int]]:
    """Spatial sizes of the image tensors in a pre-processed ``inputs``."""
    if isinstance(inputs, torch.Tensor) and inputs.dim() == 4:
        return [tuple(inputs.shape[-2:])]
    if isinstance(inputs, (list, tuple)):
        return [size for item in inputs for size in _image_sizes(item)]
    if isinstance(inputs, dict):
        return [
            size for item in inputs.values() for size in _image_sizes(item)
        ]
    return []


def check_input_size(model: torch.nn.Module, data: Dict[str, Any],
                     img_size: int, name: str) -> None:
    """Raise unless the largest pre-processed view is ``img_size`` square,
    i.e. the pipeline override reached every crop that matters."""
    with torch.no_grad():
        processed = model.data_preprocessor(data, True)
    sizes = _image_sizes(processed['inputs'])
    if not sizes or max(sizes) != (img_size, img_size):
        raise ValueError(
            f'{name}: the train pipeline produced views of sizes {sizes}, '
            f'expected the largest to be {img_size}x{img_size}; only the '
            f'transforms {sorted(CROP_SIZE_KEYS)} are resized automatically, '
            'set the others with --cfg-options')


def plain_vit_forward_flop_breakdown(
        arch: Dict[str, int], img_size: int, patch_size: int,
        device: Union[str, torch.device]) -> FlopBreakdown:
    """F and its attention part: forward FLOPs for one image of a plain
    mmpretrain ``VisionTransformer`` (CLS output, final norm, no head)."""
    vit = _vit_base_class()(
        arch=dict(arch), img_size=img_size, patch_size=patch_size)
    vit.to(device).eval()
    image = torch.zeros(1, 3, img_size, img_size, device=device)
    with torch.no_grad():
        flops = count_flop_breakdown(vit, image)
    del vit
    return flops


def plain_vit_forward_flops(arch: Dict[str, int], img_size: int,
                            patch_size: int,
                            device: Union[str, torch.device]) -> int:
    """F: forward FLOPs for one image of a plain mmpretrain
    ``VisionTransformer`` (CLS output, final norm, no head)."""
    return plain_vit_forward_flop_breakdown(arch, img_size, patch_size,
                                            device).total


def _synchronize(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def _build_optim_wrapper(model: torch.nn.Module, cfg: Config, amp: bool):
    """The config's optimizer, wrapped for fp32 or (``amp``) mixed
    precision: the benchmark, not the config, chooses the precision so that
    all rows are comparable."""
    if 'optim_wrapper' not in cfg:
        raise ValueError('the config has no optim_wrapper')
    optim_cfg = copy.deepcopy(cfg.optim_wrapper)
    if amp:
        optim_cfg['type'] = 'AmpOptimWrapper'
        optim_cfg.setdefault('loss_scale', 'dynamic')
    else:
        optim_cfg['type'] = 'OptimWrapper'
        for key in ('loss_scale', 'dtype', 'use_fsdp'):
            optim_cfg.pop(key, None)
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)  # silence the per-parameter lr log
    try:
        return build_optim_wrapper(model, optim_cfg)
    finally:
        logger.setLevel(level)


def benchmark_config(name: str,
                     config_path: str,
                     settings: BenchmarkSettings,
                     reference_forward_flops: int,
                     cfg_options: Optional[Dict[str, Any]] = None,
                     sweep: Optional[SweepValue] = None
                     ) -> BenchmarkRow:
    """Measure one config; see the module docstring.

    ``cfg_options``, then the ``sweep`` (key, value) pair, are merged into
    the config before the size overrides.
    """
    device = torch.device(settings.device)
    cfg = load_config(config_path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if sweep is not None:
        check_config_key(cfg, sweep[0], name)
        cfg.merge_from_dict(dict([sweep]))
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    overrides = override_model_size(cfg.model, settings.arch,
                                    settings.img_size, settings.patch_size)
    overrides += override_pipeline_size(
        find_train_pipeline(cfg), settings.img_size)
    print(f'  overrides: {"; ".join(overrides) or "none"}', flush=True)

    stand_in_dir = None
    stand_in_fields = []
    if settings.random_teachers:
        stand_in_dir = tempfile.TemporaryDirectory(prefix='mmmoma_stand_in_')
        stand_ins = write_random_stand_in_checkpoints(
            cfg.model, stand_in_dir.name, settings.seed)
        for change in stand_ins:
            print(f'  --random-teachers: {change} (random weights)',
                  flush=True)
        stand_in_fields = [change.split(':')[0] for change in stand_ins]
    else:
        check_checkpoints_exist(cfg.model, name)

    set_random_seed(settings.seed)
    data = build_train_batch(cfg, settings.batch_size, settings.img_size,
                             settings.seed)

    from mmpretrain.registry import MODELS
    model_cfg = copy.deepcopy(cfg.model)
    if isinstance(cfg.get('data_preprocessor'), dict):
        model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)  # silence the per-parameter init log
    try:
        # Teachers load their checkpoints when built, StrictPretrained
        # inits in init_weights (called as the Runner does).
        model = revert_sync_batchnorm(MODELS.build(model_cfg))
        model.init_weights()
    finally:
        logger.setLevel(level)
        if stand_in_dir is not None:
            stand_in_dir.cleanup()
    model.to(device)
    model.train()
    check_input_size(model, data, settings.img_size, name)
    optim_wrapper = _build_optim_wrapper(model, cfg, settings.amp)

    total_steps = 1 + settings.warmup + settings.steps
    message_hub = MessageHub.get_current_instance()
    message_hub.update_info('max_iters', total_steps)
    message_hub.update_info('max_epochs', 1)
    message_hub.update_info('epoch', 0)
    message_hub.update_info('iter', 0)

    print('  counting FLOPs of one training step ...', flush=True)
    step_flops = train_step_flop_breakdown(model, data, optim_wrapper)
    flops_per_image = step_flops.total / settings.batch_size
    model_type = type(model).__name__
    num_chunks = getattr(model, 'num_chunks', None)
    num_target_chunks = getattr(model, 'num_target_chunks', None)

    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats(device)
    print(f'  timing {settings.warmup} warm-up + {settings.steps} steps:',
          flush=True)
    progress = ProgressBar(settings.warmup + settings.steps)
    step_times = []
    for step in range(settings.warmup + settings.steps):
        message_hub.update_info('iter', 1 + step)
        _synchronize(device)
        start = time.perf_counter()
        model.train_step(data, optim_wrapper)
        _synchronize(device)
        if step >= settings.warmup:
            step_times.append(time.perf_counter() - start)
        progress.update()
    print(flush=True)
    peak_memory = (torch.cuda.max_memory_allocated(device) / 2**20
                   if device.type == 'cuda' else None)

    step_time = statistics.median(step_times)
    del model, optim_wrapper, data
    gc.collect()
    if device.type == 'cuda':
        torch.cuda.empty_cache()
    return BenchmarkRow(
        name=name,
        config=config_path,
        train_gflops_per_image=flops_per_image / 1e9,
        flops_ratio=flops_per_image / reference_forward_flops,
        attention_gflops_per_image=step_flops.attention /
        settings.batch_size / 1e9,
        attention_backward_gflops_per_image=step_flops.attention_backward /
        settings.batch_size / 1e9,
        step_time_s=step_time,
        images_per_s=settings.batch_size / step_time,
        peak_memory_mib=peak_memory,
        overrides=overrides,
        cfg_options=dict(cfg_options or {}),
        stand_in_checkpoints=stand_in_fields,
        sweep=dict([sweep]) if sweep is not None else {},
        model_type=model_type,
        num_chunks=num_chunks,
        num_target_chunks=num_target_chunks)


# ----------------------------------------------------------------------------
# Report
# ----------------------------------------------------------------------------
def _relative(value: float, reference: Optional[float]) -> str:
    """``value`` relative to ``reference`` as ``'+x.x%'``; '-' without a
    reference."""
    if reference is None or reference == 0:
        return '-'
    return f'{100.0 * (value / reference - 1.0):+.1f}%'


def _render_table(header: Sequence[str],
                  body: Sequence[Sequence[str]],
                  indent: str = '') -> List[str]:
    """Rule, header, rule, body, rule; first column left-aligned, the others
    right-aligned."""
    widths = [
        max(len(str(line[column])) for line in (header, *body))
        for column in range(len(header))
    ]

    def render(cells: Sequence[str]) -> str:
        return indent + '  '.join(
            cell.ljust(width) if column == 0 else cell.rjust(width)
            for column, (cell, width) in enumerate(zip(cells, widths)))

    rule = indent + '  '.join('-' * width for width in widths)
    return [rule, render(header), rule] + [render(line)
                                           for line in body] + [rule]


def _baseline_row(result: BenchmarkResult,
                  index: int) -> Optional[BenchmarkRow]:
    """The row of ``BASELINE_CONFIGS[index]`` (0: MAE, 1: MoCo v3), if run."""
    return next((row for row in result.rows
                 if row.name == BASELINE_CONFIGS[index][1]), None)


def _unswept_name(row: BenchmarkRow) -> str:
    """The row's name without the ``' [KEY=value]'`` of a sweep."""
    return row.name.rsplit(' [', 1)[0] if row.sweep else row.name


def format_table(result: BenchmarkResult) -> str:
    """An aligned text table of a run, with a header naming the settings.

    Columns: step FLOPs per image (GFLOPs and x F), the attention kernels'
    part of them, step FLOPs relative to MAE and MoCo v3, attention FLOPs
    relative to MoCo v3, step time (absolute and relative to MAE),
    throughput, and the peak GPU memory (only when a row has one).
    """
    settings = result.settings
    arch = settings.arch
    lines = [
        f'ViT {settings.arch_name} (embed {arch["embed_dims"]}, depth '
        f'{arch["num_layers"]}, heads {arch["num_heads"]}, mlp '
        f'{arch["feedforward_channels"]}), patch {settings.patch_size}, '
        f'{settings.img_size} px, batch {settings.batch_size}, '
        f'{settings.device}, {"AMP" if settings.amp else "fp32"}',
        f'F = plain ViT forward = {result.reference_forward_gflops:.4g} '
        'GFLOPs/img; train FLOPs = forward + backward of one step (attention '
        'counted); attn = the attention matmuls alone (Q·Kᵀ, P·V, forward + '
        'backward); time = median train_step (fwd + bwd + optimizer) over '
        f'{settings.steps} steps after {settings.warmup} warm-up; "vs MAE" '
        '/ "vs MoCo v3": relative to the mmpretrain MAE / MoCo v3 row of '
        'this run',
    ]
    mae = _baseline_row(result, 0)
    mocov3 = _baseline_row(result, 1)
    with_memory = any(row.peak_memory_mib is not None for row in result.rows)

    header = ['model', 'train GFLOPs/img', 'x F', 'attn GFLOPs/img',
              'FLOPs vs MAE', 'FLOPs vs MoCo v3', 'attn vs MoCo v3',
              'step ms', 'time vs MAE', 'img/s']
    if with_memory:
        header.append('peak GPU MiB')
    body = []
    for row in result.rows:
        cells = [
            row.name + ('*' if row.cfg_options else '') +
            ('†' if row.stand_in_checkpoints else ''),
            f'{row.train_gflops_per_image:.4g}',
            f'{row.flops_ratio:.2f}',
            f'{row.attention_gflops_per_image:.4g}',
            _relative(row.train_gflops_per_image,
                      mae and mae.train_gflops_per_image),
            _relative(row.train_gflops_per_image,
                      mocov3 and mocov3.train_gflops_per_image),
            _relative(row.attention_gflops_per_image,
                      mocov3 and mocov3.attention_gflops_per_image),
            f'{row.step_time_s * 1e3:.1f}',
            _relative(row.step_time_s, mae and mae.step_time_s),
            f'{row.images_per_s:.2f}',
        ]
        if with_memory:
            cells.append('-' if row.peak_memory_mib is None else
                         f'{row.peak_memory_mib:.0f}')
        body.append(cells)

    # one note per config and cfg-options, not one per swept row
    option_notes = [
        f'* {_unswept_name(row)} with cfg-options: ' + ' '.join(
            f'{key}={value}' for key, value in row.cfg_options.items())
        for row in result.rows if row.cfg_options
    ]
    notes = list(dict.fromkeys(option_notes)) + [
        f'† {row.name} with random stand-in weights for: ' +
        ', '.join(row.stand_in_checkpoints)
        for row in result.rows if row.stand_in_checkpoints
    ]
    return '\n'.join(lines + _render_table(header, body) + notes)


def _chunking_groups(rows: Sequence[BenchmarkRow]
                     ) -> List[List[BenchmarkRow]]:
    """The M-MoCo / M-BYOL rows grouped by config, model type, m and
    cfg-options (rows that differ only in n), in order of appearance."""
    groups: Dict[str, List[BenchmarkRow]] = {}
    for row in rows:
        if row.model_type in CHUNKED_MODEL_TYPES:
            key = repr((row.config, row.model_type, row.num_target_chunks,
                        sorted(row.cfg_options.items())))
            groups.setdefault(key, []).append(row)
    return list(groups.values())


def _percent(fraction: float) -> str:
    return f'{100.0 * fraction:.1f}%'


def _percent_change(fraction: float) -> str:
    return f'{100.0 * fraction:+.1f}%'


def explain_chunking(result: BenchmarkResult, single: BenchmarkRow,
                     chunked: BenchmarkRow) -> str:
    """Why chunking saves what it saves, from the measured numbers.

    Uses: the attention share of F (a plain ViT forward at 1 + N tokens);
    the attention share of the n = 1 step, split into the online encoder's
    (1.5 x the attention backward FLOPs: only the trained encoder is
    back-propagated, backward = 2 x forward) and the rest (the momentum
    encoder's forward); and, for the ``chunked`` row, the change of the
    attention FLOPs and of everything else (the extra CLS token of every
    chunk through the encoder, the n queries through projector, predictor
    and loss), both relative to the n = 1 step.

    Args:
        result: The run (for F and the arch).
        single: The n = 1 row.
        chunked: A row of the same config with n > 1.

    Returns:
        One paragraph, unwrapped.
    """
    settings = result.settings
    dims = settings.arch['embed_dims']
    linear_macs = (4 * dims * dims +
                   2 * dims * settings.arch['feedforward_channels'])
    tokens = (settings.img_size // settings.patch_size)**2 + 1
    step = single.train_gflops_per_image
    online = 1.5 * single.attention_backward_gflops_per_image
    target = single.attention_gflops_per_image - online
    attention_change = (chunked.attention_gflops_per_image -
                        single.attention_gflops_per_image) / step
    other_change = (
        (chunked.train_gflops_per_image - chunked.attention_gflops_per_image)
        - (step - single.attention_gflops_per_image)) / step
    net_change = chunked.train_gflops_per_image / step - 1.0
    m = single.num_target_chunks
    target_input = 'the full view, m=1' if m == 1 else \
        f'{m} chunks, m={m}'
    n = chunked.num_chunks
    num_patches = tokens - 1
    left_over = num_patches % n
    dropped = (f', and the {left_over} patches per view left over by '
               f'{num_patches} = {n} × {num_patches // n} + {left_over} are '
               'not encoded') if left_over else ''
    forward_share = result.reference_attention_gflops / \
        result.reference_forward_gflops
    step_share = single.attention_gflops_per_image / step
    return (
        f'Why the gap: the attention matmuls (Q·Kᵀ, P·V: 2·S²·C '
        f'multiply-adds per block, vs {linear_macs / dims**2:.3g}·S·C² for '
        f'the projections and MLP) are {_percent(forward_share)} of a plain '
        f'ViT forward at S={tokens} tokens and {_percent(step_share)} of '
        f'the n=1 step; chunking shrinks only the online encoder\'s '
        f'{_percent(online / step)} of the step (the momentum encoder\'s '
        f'{_percent(target / step)} stays: it sees {target_input}). n={n} '
        f'changes the attention FLOPs by {_percent_change(attention_change)} '
        f'of the n=1 step and everything else by '
        f'{_percent_change(other_change)}: its {n} CLS tokens per view (one '
        f'per chunk, {n - 1} more than n=1) and {n} queries per view go '
        f'through the encoder, the heads and the loss{dropped}. Net '
        f'{_percent_change(net_change)}.')


def format_chunking_summary(result: BenchmarkResult) -> str:
    """The M-MoCo / M-BYOL rows' chunking savings next to the paper's claim.

    For every group of rows that differ only in n (see
    :func:`_chunking_groups`): n, m, the step and attention FLOPs relative to
    the group's n = 1 row and to the mmpretrain MoCo v3 row, and
    :func:`explain_chunking` for the largest n. Empty if the run has no such
    rows.
    """
    groups = _chunking_groups(result.rows)
    if not groups:
        return ''
    mocov3 = _baseline_row(result, 1)
    lines = ['', 'Chunking savings (per image, one training step), measured '
             'vs claimed:', '  ' + PAPER_CHUNKING_CLAIM + '.']
    header = ('model', 'n', 'm', 'step vs n=1', 'attn vs n=1',
              'step vs MoCo v3', 'attn vs MoCo v3')
    for rows in groups:
        single = next((row for row in rows if row.num_chunks == 1), None)
        body = [(row.name, str(row.num_chunks), str(row.num_target_chunks),
                 _relative(row.train_gflops_per_image,
                           single and single.train_gflops_per_image),
                 _relative(row.attention_gflops_per_image,
                           single and single.attention_gflops_per_image),
                 _relative(row.train_gflops_per_image,
                           mocov3 and mocov3.train_gflops_per_image),
                 _relative(row.attention_gflops_per_image,
                           mocov3 and mocov3.attention_gflops_per_image))
                for row in rows]
        lines += _render_table(header, body, indent='  ')
        chunked = max((row for row in rows if row.num_chunks > 1),
                      key=lambda row: row.num_chunks, default=None)
        if single is None:
            lines.append('  (no n = 1 row: add --sweep model.num_chunks='
                         '1,... to measure the savings against n = 1)')
        elif chunked is not None:
            lines += textwrap.wrap(
                explain_chunking(result, single, chunked), width=79,
                initial_indent='  ', subsequent_indent='  ')
    return '\n'.join(lines)


# ----------------------------------------------------------------------------
# CLI
# ----------------------------------------------------------------------------
def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Per-image training FLOPs and step time of configs, next '
        'to mmpretrain MAE and MoCo v3 at the same ViT size')
    parser.add_argument(
        'configs', nargs='*', metavar='CONFIG',
        help='config files (also package::path); baselines are always added '
        'unless --no-baselines')
    parser.add_argument(
        '--arch', type=parse_arch, default='b',
        help="ViT arch: a VisionTransformer arch name ('b', 'l', "
        "'deit-s', 'mocov3-small', ...) or a dict literal "
        "\"{'embed_dims': 64, 'num_layers': 2, 'num_heads': 4, "
        "'feedforward_channels': 256}\" (default: b)")
    parser.add_argument('--img-size', type=int, default=224,
                        help='input size in pixels (default: 224)')
    parser.add_argument('--patch-size', type=int, default=16,
                        help='ViT patch size (default: 16)')
    parser.add_argument('--batch-size', type=int, default=8,
                        help='images per step (default: 8; >= 2 because of '
                        "MoCo v3's BatchNorm)")
    parser.add_argument(
        '--device', choices=('cpu', 'cuda'),
        default='cuda' if torch.cuda.is_available() else 'cpu',
        help='default: cuda when available, else cpu')
    parser.add_argument('--steps', type=int, default=5,
                        help='timed steps (default: 5)')
    parser.add_argument('--warmup', type=int, default=2,
                        help='untimed steps before timing (default: 2)')
    parser.add_argument('--amp', action='store_true',
                        help='mixed precision (AmpOptimWrapper; needs CUDA); '
                        "default fp32 for every row, whatever the configs say")
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction, default={},
        help='overrides (key=value) for the given CONFIGs, not for the '
        'baselines')
    for key, name, _ in BASELINE_CONFIGS:
        parser.add_argument(
            f'--{key}-cfg-options', nargs='+', action=DictAction, default={},
            help=f'overrides (key=value) for the {name} baseline, e.g. a '
            'smaller MAE decoder for tiny encoders (default: the published '
            'config)')
    parser.add_argument(
        '--random-teachers', action='store_true',
        help='replace every FrozenTeacher checkpoint and every '
        'StrictPretrained init checkpoint in the CONFIGs by a randomly '
        'initialised checkpoint of the benchmarked arch, written to a '
        'temporary folder (cost does not depend on the weights); without '
        'it, the files must exist and fit --arch')
    parser.add_argument(
        '--sweep', type=parse_sweep, metavar='KEY=V1,V2,...',
        help='benchmark every CONFIG once per value, with KEY=value added to '
        'its --cfg-options (values parsed as --cfg-options parses them), '
        'e.g. model.num_chunks=1,2,4,8; rows are named "CONFIG '
        '[LAST_KEY=value]"; the baselines are not swept')
    parser.add_argument('--no-baselines', action='store_true',
                        help='leave out the mmpretrain MAE / MoCo v3 rows')
    parser.add_argument('--out', help='also write the results to this JSON '
                        'file')
    args = parser.parse_args(argv)

    def fail(message: str) -> None:
        parser.error(message)

    if args.no_baselines and not args.configs:
        fail('--no-baselines needs at least one CONFIG')
    if args.sweep is not None and not args.configs:
        fail('--sweep needs at least one CONFIG (the baselines are not '
             'swept)')
    if args.batch_size < 2:
        fail(f'--batch-size must be >= 2 (BatchNorm in training mode), got '
             f'{args.batch_size}')
    if args.steps < 1:
        fail(f'--steps must be >= 1, got {args.steps}')
    if args.warmup < 0:
        fail(f'--warmup must be >= 0, got {args.warmup}')
    if args.img_size < 1 or args.patch_size < 1 or \
            args.img_size % args.patch_size:
        fail(f'--img-size ({args.img_size}) must be a positive multiple of '
             f'--patch-size ({args.patch_size})')
    if args.device == 'cuda' and not torch.cuda.is_available():
        fail('--device cuda: CUDA is not available')
    if args.amp and args.device != 'cuda':
        fail("--amp needs --device cuda (mmengine's AmpOptimWrapper "
             'requires a GPU)')
    try:
        args.arch_dict = resolve_vit_arch(args.arch)
    except ValueError as error:
        fail(str(error))
    return args


def main(argv: Optional[Sequence[str]] = None) -> BenchmarkResult:
    """Run the benchmark and print the table; returns what was measured."""
    args = parse_args(argv)
    settings = BenchmarkSettings(
        arch=args.arch_dict,
        arch_name=args.arch if isinstance(args.arch, str) else 'custom',
        img_size=args.img_size,
        patch_size=args.patch_size,
        batch_size=args.batch_size,
        device=args.device,
        steps=args.steps,
        warmup=args.warmup,
        amp=args.amp,
        seed=args.seed,
        random_teachers=args.random_teachers)

    init_default_scope('mmpretrain')
    # (row name, config, cfg-options, sweep (key, value) or None)
    jobs: List[Tuple[str, str, Dict[str, Any], Optional[SweepValue]]] = []
    if not args.no_baselines:
        jobs += [(name, path, getattr(args, f'{key}_cfg_options'), None)
                 for key, name, path in BASELINE_CONFIGS]
    for path in args.configs:
        name = osp.splitext(osp.basename(path))[0]
        if args.sweep is None:
            jobs.append((name, path, args.cfg_options, None))
            continue
        # fail before minutes of benchmarking, not in the middle
        cfg = load_config(path)
        if args.cfg_options:
            cfg.merge_from_dict(args.cfg_options)
        key, values = args.sweep
        check_config_key(cfg, key, name)
        jobs += [(sweep_row_name(name, key, value), path, args.cfg_options,
                  (key, value)) for value in values]

    reference = plain_vit_forward_flop_breakdown(settings.arch,
                                                 settings.img_size,
                                                 settings.patch_size,
                                                 settings.device)
    print(f'F (plain ViT forward) = {reference.total / 1e9:.4g} GFLOPs/img '
          f'(attention {reference.attention / 1e9:.4g})', flush=True)

    rows = []
    for index, (name, path, cfg_options, sweep) in enumerate(jobs, start=1):
        print(f'[{index}/{len(jobs)}] {name} ({path})', flush=True)
        row = benchmark_config(name, path, settings, reference.total,
                               cfg_options, sweep)
        print(f'  {row.train_gflops_per_image:.4g} GFLOPs/img '
              f'({row.flops_ratio:.2f} F; attention '
              f'{row.attention_gflops_per_image:.4g}), '
              f'{row.step_time_s * 1e3:.1f} ms/step', flush=True)
        rows.append(row)

    result = BenchmarkResult(
        settings=settings,
        reference_forward_gflops=reference.total / 1e9,
        reference_attention_gflops=reference.attention / 1e9,
        rows=rows)
    print(format_table(result), flush=True)
    summary = format_chunking_summary(result)
    if summary:
        print(summary, flush=True)
    if args.out:
        with open(args.out, 'w') as file:
            json.dump(asdict(result), file, indent=2)
        print(f'results written to {args.out}')
    return result


if __name__ == '__main__':
    main(sys.argv[1:])
