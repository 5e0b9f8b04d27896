"""Training cost of self-supervised configs, side by side with mmpretrain's
MAE and MoCo v3 at the same ViT size.

For every config (and, unless ``--no-baselines``, mmpretrain's MAE and MoCo v3
configs) the tool

1. rewrites the config to the requested ViT (``--arch``, ``--img-size``,
   ``--patch-size``) with :func:`mmmoma.utils.model_shrinking.shrink_model`
   (every ViT-based module gets the same arch, frozen teachers included;
   the widths of necks and heads that follow it too) and
   :func:`mmmoma.utils.config_tools.override_pipeline_size`,
2. with ``--random-teachers``, points every checkpoint the model reads when
   it is built or initialised (``FrozenTeacher`` checkpoints, ``Pretrained``
   / ``StrictPretrained`` init checkpoints) at random weights of the
   overridden arch in a temporary folder
   (:func:`mmmoma.utils.stand_in_checkpoints.write_stand_in_checkpoints`),
   and prints each replacement; without it those files must exist,
3. builds the model and calls ``init_weights`` as MMEngine's Runner does,
4. builds one real training batch
   (:func:`mmmoma.utils.train_batch.build_train_batch`: the config's own
   train pipeline on synthetic images, collated by its ``collate_fn``),
5. counts the FLOPs of one full training step (``model.train_step``:
   forward + backward; see :mod:`mmmoma.utils.flops`; forwards under
   ``torch.no_grad``, such as frozen teachers, are counted and add no
   backward), and separately the FLOPs of the attention matmuls alone
   (``Q·Kᵀ`` and ``P·V``, forward + backward),
6. times ``--steps`` steps after ``--warmup`` (median, CUDA-synchronised)
   in ``--precision`` (whatever the configs say, so that rows compare),
   compiled first if the config sets ``compile`` (as MMEngine's Runner) or
   with ``--compile`` (the compiling step is untimed), reads the peak GPU
   memory, and divides the step FLOP/s by the peak of a large matmul
   measured once per run on the same device: MFU (:mod:`mmmoma.utils.mfu`),
7. with ``--data-root`` (JPEGs from
   ``tools/dataset_converters/make_stand_in_imagenet.py``), times the train
   pipeline on one core and divides the step rate by it: the CPU cores that
   would feed the step (:mod:`mmmoma.utils.data_throughput`; a config with
   ``data_path='gpu'`` is rewritten by ``mmmoma.datasets.gpu_data_path``
   first: its bytes-only pipeline is timed, its batch is real JPEGs, and
   the decode + augmentation are part of the step).

FLOPs are reported per sample (a MoCo v3 sample is two crops) and as a
multiple of F, the forward FLOPs per image of a plain mmpretrain
``VisionTransformer`` of the same arch, patch and image size; the table
(``benchmark_report.py``) compares every row with the MAE row (FLOPs, time)
and the MoCo v3 row (FLOPs, attention FLOPs).

``--sweep KEY=V1,V2,...`` (``benchmark_sweep.py``) benchmarks every CONFIG
once per value, with ``KEY=value`` added to its ``--cfg-options``; rows are
named ``CONFIG [LAST_KEY=value]``; the baselines are not swept. Speed
switches turned on by ``--cfg-options`` (``optim_wrapper.optimizer.fused``,
``model[.teachers.<name>].teacher.dtype``, ``compile``, ``data_path=gpu``)
are appended to the row name: ``CONFIG (fused, teacher bf16)``. Rows of
models that encode their views in chunks (a ``num_chunks`` attribute: M-MoCo,
M-BYOL) are followed by ``chunking_summary.py``'s comparison with the n = 1
row, MoCo v3 and the M-MoCo paper's claim.

Examples (ViT-B/16; Swin configs are refused with an error saying so)::

    python tools/analysis/benchmark.py --arch b --img-size 224 \
        --batch-size 2 --steps 3 --warmup 1 --device cpu
    python tools/analysis/benchmark.py CONFIG --random-teachers --arch b \
        --precision bf16 --data-root data/stand_in_imagenet \
        --cfg-options optim_wrapper.optimizer.fused=True
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
import sys
import tempfile
from dataclasses import asdict
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
from mmengine.config import Config, DictAction
from mmengine.logging import MessageHub, MMLogger
from mmengine.model import revert_sync_batchnorm
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from mmengine.runner import set_random_seed
from mmengine.utils import ProgressBar

import mmmoma  # noqa: F401  (registers components, applies compat fixes)
from mmmoma.datasets.gpu_data_path import apply_data_path
from mmmoma.utils.config_tools import (CROP_SIZE_KEYS, find_train_pipeline,
                                       load_config, override_pipeline_size)
from mmmoma.utils.data_throughput import (cores_per_gpu, load_real_batch,
                                          measure_pipeline_throughput,
                                          stand_in_image_paths)
from mmmoma.utils.flops import (FlopBreakdown, count_flop_breakdown,
                                train_step_flop_breakdown)
from mmmoma.utils.mfu import (MatmulPeak, compile_options, measure_matmul_peak,
                              model_flops_utilisation,
                              precision_optim_wrapper_cfg, resolved_precision,
                              time_train_steps)
from mmmoma.utils.model_shrinking import resolve_vit_arch, shrink_model
from mmmoma.utils.stand_in_checkpoints import (missing_checkpoints,
                                               write_stand_in_checkpoints)
from mmmoma.utils.train_batch import build_train_batch, image_sizes

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))  # sibling modules
from benchmark_report import (BASELINE_CONFIGS, BenchmarkResult,  # noqa: E402
                              BenchmarkRow, BenchmarkSettings, format_peak,
                              format_table)
from benchmark_sweep import (SweepValue, add_cost_arguments,  # noqa: E402
                             check_config_key, check_cost_arguments,
                             parse_sweep, speed_settings, sweep_row_name,
                             switch_row_name)
from chunking_summary import format_chunking_summary  # noqa: E402


def parse_arch(text: str) -> Union[str, Dict[str, int]]:
    """Parse ``--arch``: a name, or a Python / JSON dict literal."""
    if text.lstrip().startswith('{'):
        try:
            return ast.literal_eval(text)
        except (ValueError, SyntaxError) as error:
            raise argparse.ArgumentTypeError(
                f'--arch: cannot parse dict {text!r}: {error}') from error
    return text


def check_checkpoints_exist(model_cfg: Dict[str, Any], name: str) -> None:
    """Raise a FileNotFoundError naming every checkpoint file the model
    loads that does not exist."""
    missing = missing_checkpoints(model_cfg)
    if missing:
        raise FileNotFoundError(
            f'{name}: checkpoint file(s) not found: {"; ".join(missing)}. '
            'Pass --random-teachers to benchmark with random stand-in '
            'weights (FLOPs and time do not depend on the weights).')


# ----------------------------------------------------------------------------
# Batch, model, measurement
# ----------------------------------------------------------------------------
def check_input_size(model: torch.nn.Module, data: Dict[str, Any],
                     img_size: int, name: str) -> None:
    """Raise unless the largest pre-processed view is ``img_size`` square,
    i.e. the pipeline override reached every crop that matters."""
    with torch.no_grad():
        processed = model.data_preprocessor(data, True)
    sizes = image_sizes(processed['inputs'])
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
    from mmpretrain.models import VisionTransformer
    vit = VisionTransformer(
        arch=dict(arch), img_size=img_size, patch_size=patch_size)
    vit.to(device).eval()
    image = torch.zeros(1, 3, img_size, img_size, device=device)
    with torch.no_grad():
        flops = count_flop_breakdown(vit, image)
    del vit
    return flops


def _build_optim_wrapper(model: torch.nn.Module, cfg: Config,
                         precision: str):
    """The config's optimizer, wrapped for ``precision`` (the benchmark, not
    the config, chooses it so that all rows are comparable; see
    :func:`mmmoma.utils.mfu.precision_optim_wrapper_cfg`); returns it and
    the precision it resolved."""
    if 'optim_wrapper' not in cfg:
        raise ValueError('the config has no optim_wrapper')
    optim_cfg = precision_optim_wrapper_cfg(cfg.optim_wrapper, precision)
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)  # silence the per-parameter lr log
    try:
        wrapper = build_optim_wrapper(model, optim_cfg)
    finally:
        logger.setLevel(level)
    return wrapper, resolved_precision(wrapper)


def benchmark_config(name: str,
                     config_path: str,
                     settings: BenchmarkSettings,
                     reference_forward_flops: int,
                     cfg_options: Optional[Dict[str, Any]] = None,
                     sweep: Optional[SweepValue] = None,
                     peak: Optional[MatmulPeak] = None) -> BenchmarkRow:
    """Measure one config; see the module docstring.

    ``cfg_options``, then the ``sweep`` (key, value) pair, are merged into
    the config before the size overrides; MFU is relative to ``peak``.
    """
    device = torch.device(settings.device)
    cfg = load_config(config_path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if sweep is not None:
        check_config_key(cfg, sweep[0], name)
        cfg.merge_from_dict(dict([sweep]))
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    try:  # ViTs only: Swin backbones are left alone, hence refused
        overrides = shrink_model(cfg.model, settings.arch, settings.img_size,
                                 settings.patch_size)
    except ValueError as error:
        raise ValueError(f'{name}: {error}; --arch / --img-size / '
                         '--patch-size apply to ViTs only') from error
    overrides += override_pipeline_size(
        find_train_pipeline(cfg), settings.img_size)
    print(f'  overrides: {"; ".join(overrides) or "none"}', flush=True)
    switches = speed_settings(cfg, settings.compile)
    cfg = apply_data_path(cfg)  # after the size overrides
    data_path = cfg.get('data_path', 'cpu')
    scope = cfg.get('default_scope', 'mmpretrain')
    image_paths = (stand_in_image_paths(settings.data_root)
                   if settings.data_root else None)
    if data_path == 'gpu' and not image_paths:
        raise ValueError(f'{name}: data_path=gpu decodes real JPEG bytes in '
                         'the step: pass --data-root')

    stand_in_dir = None
    stand_in_fields = []
    if settings.random_teachers:
        stand_in_dir = tempfile.TemporaryDirectory(prefix='mmmoma_stand_in_')
        cfg.model, stand_ins = write_stand_in_checkpoints(
            cfg.model, stand_in_dir.name, settings.seed)
        for stand_in in stand_ins:
            print(f'  --random-teachers: {stand_in.change} (random weights)',
                  flush=True)
        stand_in_fields = [stand_in.field for stand_in in stand_ins]
    else:
        check_checkpoints_exist(cfg.model, name)

    set_random_seed(settings.seed)
    if data_path == 'gpu':
        data = load_real_batch(find_train_pipeline(cfg),
                               cfg.train_dataloader.get('collate_fn'),
                               image_paths, settings.batch_size, scope)
    else:
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
    optim_wrapper, precision = _build_optim_wrapper(model, cfg,
                                                    settings.precision)
    compile_kwargs = compile_options(cfg.get('compile'), settings.compile)

    total_steps = 1 + (compile_kwargs is not None) + settings.warmup + \
        settings.steps
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

    if compile_kwargs is not None:  # FLOPs were counted uncompiled
        print(f'  torch.compile(model.train_step, **{compile_kwargs}): the '
              'first step compiles, untimed', flush=True)
    print(f'  timing {settings.warmup} warm-up + {settings.steps} steps '
          f'({precision}):', flush=True)
    progress = ProgressBar(total_steps - 1)

    def before_step(index: int) -> None:
        message_hub.update_info('iter', 1 + index)
        if index:
            progress.update()

    timing = time_train_steps(model, data, optim_wrapper, settings.steps,
                              settings.warmup, compile_kwargs, before_step)
    progress.update()
    print(flush=True)
    step_time = timing.step_time_s
    data_rate = None
    if image_paths:
        data_rate = measure_pipeline_throughput(
            find_train_pipeline(cfg), image_paths, settings.data_images,
            scope).images_per_core_s
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
        peak_memory_mib=timing.peak_memory_mib,
        overrides=overrides,
        cfg_options=dict(cfg_options or {}),
        stand_in_checkpoints=stand_in_fields,
        sweep=dict([sweep]) if sweep is not None else {},
        model_type=model_type,
        num_chunks=num_chunks,
        num_target_chunks=num_target_chunks,
        precision=precision,
        speed_settings=switches,
        tflops_per_s=step_flops.total / step_time / 1e12,
        mfu=None if peak is None else model_flops_utilisation(
            step_flops.total, step_time, peak.flops_per_s),
        compile_s=timing.compile_s,
        data_path=data_path,
        data_images_per_core_s=data_rate,
        cores_per_step=None if data_rate is None else cores_per_gpu(
            settings.batch_size / step_time, data_rate))


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
    add_cost_arguments(parser)
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
    check_cost_arguments(args, fail)
    try:
        args.arch_dict = resolve_vit_arch(args.arch)
    except ValueError as error:
        fail(f'--arch: {error}')
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
        precision=args.precision,
        seed=args.seed,
        random_teachers=args.random_teachers,
        compile=args.compile,
        data_root=args.data_root,
        data_images=args.data_images)

    init_default_scope('mmpretrain')
    # (row name, config, cfg-options, sweep (key, value) or None)
    jobs: List[Tuple[str, str, Dict[str, Any], Optional[SweepValue]]] = []
    if not args.no_baselines:
        jobs += [(name, path, getattr(args, f'{key}_cfg_options'), None)
                 for key, name, path in BASELINE_CONFIGS]
    for path in args.configs:
        name = osp.splitext(osp.basename(path))[0]
        if args.sweep is None:
            jobs.append((switch_row_name(name, args.cfg_options), path,
                         args.cfg_options, None))
            continue
        # fail before minutes of benchmarking, not in the middle
        cfg = load_config(path)
        if args.cfg_options:
            cfg.merge_from_dict(args.cfg_options)
        key, values = args.sweep
        check_config_key(cfg, key, name)
        jobs += [(switch_row_name(sweep_row_name(name, key, value),
                                  args.cfg_options), path, args.cfg_options,
                  (key, value)) for value in values]

    reference = plain_vit_forward_flop_breakdown(settings.arch,
                                                 settings.img_size,
                                                 settings.patch_size,
                                                 settings.device)
    print(f'F (plain ViT forward) = {reference.total / 1e9:.4g} GFLOPs/img '
          f'(attention {reference.attention / 1e9:.4g})', flush=True)
    device = torch.device(settings.device)
    peak = measure_matmul_peak(
        device, torch.bfloat16 if device.type == 'cuda'
        or settings.precision == 'bf16' else torch.float32)
    print(format_peak(peak._asdict()), flush=True)

    rows = []
    for index, (name, path, cfg_options, sweep) in enumerate(jobs, start=1):
        print(f'[{index}/{len(jobs)}] {name} ({path})', flush=True)
        row = benchmark_config(name, path, settings, reference.total,
                               cfg_options, sweep, peak)
        data = '' if row.data_images_per_core_s is None else (
            f', data {row.data_images_per_core_s:.1f} img/s/core '
            f'({row.cores_per_step:.2f} cores)')
        print(f'  {row.train_gflops_per_image:.4g} GFLOPs/img '
              f'({row.flops_ratio:.2f} F; attention '
              f'{row.attention_gflops_per_image:.4g}), '
              f'{row.step_time_s * 1e3:.1f} ms/step, {row.precision}, MFU '
              f'{100 * row.mfu:.3g}%{data}', flush=True)
        rows.append(row)

    result = BenchmarkResult(
        settings=settings,
        reference_forward_gflops=reference.total / 1e9,
        reference_attention_gflops=reference.attention / 1e9,
        rows=rows,
        matmul_peak=peak._asdict())
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
