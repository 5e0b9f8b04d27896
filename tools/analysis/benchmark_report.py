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
    return '\n'.join(lines + render_table(header, body) + notes)
