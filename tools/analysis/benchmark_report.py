"""The report of tools/analysis/benchmark.py: what a run measured, and its
table (the rows next to the mmpretrain MAE and MoCo v3 baselines)."""
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from table_format import relative, render_table

#: (key of the ``--KEY-cfg-options`` argument, row name, config)
BASELINE_CONFIGS: Tuple[Tuple[str, str, str], ...] = (
    ('mae', 'mmpretrain MAE',
     'mmpretrain::mae/mae_vit-base-p16_8xb512-amp-coslr-300e_in1k.py'),
    ('mocov3', 'mmpretrain MoCo v3',
     'mmpretrain::mocov3/mocov3_vit-base-p16_16xb256-amp-coslr-300e_in1k.py'),
)


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
    precision: str = 'fp32'
    seed: int = 0
    random_teachers: bool = False
    compile: bool = False
    data_root: Optional[str] = None
    data_images: int = 0


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
        precision: What the step's autocast ran in: ``'fp32'``, ``'bf16'``
            or ``'fp16'`` (as the optim wrapper resolved it).
        speed_settings: The config's speed switches in effect, e.g.
            ``['fused', 'teacher bf16']`` (see ``benchmark_sweep``).
        tflops_per_s: Achieved step FLOP/s (the whole batch), in TFLOP/s.
        mfu: ``tflops_per_s`` over the run's measured matmul peak (a
            fraction).
        compile_s: Wall time of the first, compiling step (None: not
            compiled); not part of ``step_time_s``.
        data_path: ``'cpu'`` or ``'gpu'`` (the config's ``data_path``).
        data_images_per_core_s: The train pipeline's images per second on
            one CPU core, on ``--data-root`` JPEGs (None: not measured).
        cores_per_step: CPU cores whose pipelines produce ``images_per_s``:
            per GPU on CUDA, for the CPU's own step on the CPU.
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
    precision: str = 'fp32'
    speed_settings: List[str] = field(default_factory=list)
    tflops_per_s: Optional[float] = None
    mfu: Optional[float] = None
    compile_s: Optional[float] = None
    data_path: str = 'cpu'
    data_images_per_core_s: Optional[float] = None
    cores_per_step: Optional[float] = None


@dataclass
class BenchmarkResult:
    """Everything one run measured.

    Attributes:
        settings: What every row shares.
        reference_forward_gflops: F, GFLOPs of a plain ViT forward per image.
        reference_attention_gflops: The attention kernels' part of F.
        rows: One per benchmarked config (and sweep value).
        matmul_peak: The peak MFU is measured against
            (:class:`mmmoma.utils.mfu.MatmulPeak` as a dict).
    """
    settings: BenchmarkSettings
    reference_forward_gflops: float
    reference_attention_gflops: float
    rows: List[BenchmarkRow]
    matmul_peak: Optional[Dict[str, Any]] = None


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
    relative to MoCo v3, step time (absolute and relative to MAE) and
    throughput; then the cost table (:func:`format_cost_table`).
    """
    settings = result.settings
    arch = settings.arch
    lines = [
        f'ViT {settings.arch_name} (embed {arch["embed_dims"]}, depth '
        f'{arch["num_layers"]}, heads {arch["num_heads"]}, mlp '
        f'{arch["feedforward_channels"]}), patch {settings.patch_size}, '
        f'{settings.img_size} px, batch {settings.batch_size}, '
        f'{settings.device}, {settings.precision}' +
        (', compile' if settings.compile else ''),
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
    header = ['model', 'train GFLOPs/img', 'x F', 'attn GFLOPs/img',
              'FLOPs vs MAE', 'FLOPs vs MoCo v3', 'attn vs MoCo v3',
              'step ms', 'time vs MAE', 'img/s']
    body = []
    for row in result.rows:
        cells = [
            row.name + ('*' if row.cfg_options else '') +
            ('†' if row.stand_in_checkpoints else ''),
            f'{row.train_gflops_per_image:.4g}',
            f'{row.flops_ratio:.2f}',
            f'{row.attention_gflops_per_image:.4g}',
            relative(row.train_gflops_per_image,
                     mae and mae.train_gflops_per_image),
            relative(row.train_gflops_per_image,
                     mocov3 and mocov3.train_gflops_per_image),
            relative(row.attention_gflops_per_image,
                     mocov3 and mocov3.attention_gflops_per_image),
            f'{row.step_time_s * 1e3:.1f}',
            relative(row.step_time_s, mae and mae.step_time_s),
            f'{row.images_per_s:.2f}',
        ]
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
    return '\n'.join(lines + render_table(header, body) + notes +
                     format_cost_table(result))


#: What a figure that needs a GPU reads on the CPU (never an estimate).
NOT_MEASURED = 'not measured'
#: What a figure reads that was not asked for (no ``--data-root``).
NOT_ASKED = '—'


def format_peak(peak: Optional[Dict[str, Any]]) -> str:
    """One line naming the matmul peak that MFU is relative to."""
    if not peak:
        return 'matmul peak: not measured'
    return (f'matmul peak (MFU = step FLOP/s / this): {peak["device_name"]}, '
            f'{peak["dtype"]} {peak["size"]}x{peak["size"]} matmul, '
            f'{peak["flops_per_s"] / 1e12:.3g} TFLOP/s')


def format_cost_table(result: BenchmarkResult) -> List[str]:
    """What a GPU owner pays for, one line per row: the precision and speed
    switches in effect, throughput, MFU, peak GPU memory, the train
    pipeline's images/s per CPU core and the cores that would feed the
    step. Figures that need a GPU read :data:`NOT_MEASURED` on the CPU; the
    data columns read :data:`NOT_ASKED` without ``--data-root``."""
    on_gpu = result.settings.device == 'cuda'
    header = ['model', 'precision', 'speed settings', 'step ms', 'img/s',
              'TFLOP/s', 'MFU', 'peak GPU MiB', 'data img/s/core']
    header += (['CPU cores/GPU'] if on_gpu else
               ['cores/CPU step', 'CPU cores/GPU'])
    body = []
    for row in result.rows:
        data = NOT_ASKED if row.data_images_per_core_s is None else \
            f'{row.data_images_per_core_s:.1f}'
        cores = NOT_ASKED if row.cores_per_step is None else \
            f'{row.cores_per_step:.2f}'
        cells = [
            row.name, row.precision, ', '.join(row.speed_settings) or '-',
            f'{row.step_time_s * 1e3:.1f}', f'{row.images_per_s:.2f}',
            '-' if row.tflops_per_s is None else f'{row.tflops_per_s:.3g}',
            '-' if row.mfu is None else f'{100 * row.mfu:.3g}%',
            f'{row.peak_memory_mib:.0f}' if row.peak_memory_mib is not None
            else NOT_MEASURED, data
        ]
        cells += [cores] if on_gpu else [cores, NOT_MEASURED]
        body.append(cells)
    notes = [
        'data img/s/core: the train pipeline (decode + augment, one torch / '
        'OpenCV thread) on the --data-root JPEGs, per CPU second; cores = '
        'img/s / that' + ('' if on_gpu else '; GPU figures: ' + NOT_MEASURED +
                          ' (no GPU)'),
    ] + [
        f'  {row.name}: first (compiling) step {row.compile_s:.1f} s, not '
        'timed' for row in result.rows if row.compile_s is not None
    ] + [
        f'  {row.name}: MFU above 100%: part of the step runs in a faster '
        'dtype than the peak\'s (e.g. a bf16 frozen teacher in an fp32 step)'
        for row in result.rows if row.mfu is not None and row.mfu > 1
    ]
    return ['', 'Cost', format_peak(result.matmul_peak)] + \
        render_table(header, body) + notes
