"""Model FLOP utilisation (MFU) against a peak measured on the same device.

MFU = (FLOPs of one training step / its wall time) / peak FLOP/s. The peak is
not a datasheet number: :func:`measure_matmul_peak` times a large square
matrix product on the device the step runs on, so the figure says how much
of what this device *does achieve* on the easiest kernel the step gets:

* CUDA: bf16, 8192 x 8192 (the precision a GPU owner would train in; an
  fp32 step is measured against it too, which is what it leaves unused);
* CPU: the dtype the step runs in (fp32, or bf16 under bf16 autocast), with
  torch's current thread count, at a size calibrated so that one product
  takes about ``target_s`` seconds.

FLOPs follow :mod:`mmmoma.utils.flops` (2 per multiply-add): an ``n x n``
product costs ``2 n³``.

The step side: :func:`precision_optim_wrapper_cfg` (the optim wrapper that
trains in fp32 / bf16 / fp16), :func:`compile_options` (a config's
``compile`` field read as MMEngine's Runner reads it) and
:func:`time_train_steps` (compile time kept out of the step time).
"""
import copy
import platform
import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Union

import torch

#: Side of the CUDA peak matmul.
CUDA_PEAK_SIZE = 8192
#: CPU sizes are rounded to a multiple of this and kept in [256, 8192].
CPU_SIZE_STEP = 256


class MatmulPeak(NamedTuple):
    """What :func:`measure_matmul_peak` measured.

    Attributes:
        device_name: E.g. ``'NVIDIA H100 80GB HBM3'`` or the CPU model and
            its thread count.
        dtype: ``'bfloat16'`` / ``'float32'`` / ``'float16'``.
        size: Side ``n`` of the square matrices.
        seconds: Median time of one product.
        flops_per_s: ``2 n³ / seconds``.
    """
    device_name: str
    dtype: str
    size: int
    seconds: float
    flops_per_s: float


def matmul_flops(size: int) -> int:
    """FLOPs of one ``size x size`` by ``size x size`` product: ``2 n³``."""
    return 2 * size**3


def device_name(device: Union[str, torch.device]) -> str:
    """A readable name of ``device`` (CPU: model name and torch threads)."""
    device = torch.device(device)
    if device.type == 'cuda':
        return torch.cuda.get_device_name(device)
    model = platform.processor() or platform.machine()
    try:
        with open('/proc/cpuinfo') as file:
            for line in file:
                if line.startswith('model name'):
                    model = line.split(':', 1)[1].strip()
                    break
    except OSError:
        pass
    return f'{model} ({torch.get_num_threads()} torch threads)'


def _synchronize(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def _time_products(a: torch.Tensor, b: torch.Tensor, out: torch.Tensor,
                   count: int) -> float:
    """Seconds per product, over ``count`` products between two syncs."""
    _synchronize(a.device)
    start = time.perf_counter()
    for _ in range(count):
        torch.matmul(a, b, out=out)
    _synchronize(a.device)
    return (time.perf_counter() - start) / count


def _operands(size: int, device: torch.device, dtype: torch.dtype,
              generator: torch.Generator):
    a = torch.randn(size, size, generator=generator).to(device, dtype)
    b = torch.randn(size, size, generator=generator).to(device, dtype)
    return a, b, torch.empty_like(a)


def calibrate_cpu_size(dtype: torch.dtype, target_s: float,
                       max_size: int = 8192) -> int:
    """The side whose product takes about ``target_s`` on the CPU, from the
    time of a 512 product (time grows as n³), rounded to
    :data:`CPU_SIZE_STEP`."""
    generator = torch.Generator().manual_seed(0)
    probe = 512
    a, b, out = _operands(probe, torch.device('cpu'), dtype, generator)
    _time_products(a, b, out, 1)  # first call: allocation, kernel choice
    seconds = max(_time_products(a, b, out, 1), 1e-6)
    size = probe * (target_s / seconds)**(1 / 3)
    size = CPU_SIZE_STEP * round(size / CPU_SIZE_STEP)
    return int(min(max(size, CPU_SIZE_STEP), max_size))


def measure_matmul_peak(device: Union[str, torch.device],
                        dtype: Optional[torch.dtype] = None,
                        size: Optional[int] = None,
                        warmup: int = 1,
                        repeats: int = 5,
                        target_s: float = 0.2) -> MatmulPeak:
    """Achieved FLOP/s of a large square matmul on ``device``.

    Args:
        device: Where to measure (``'cpu'``, ``'cuda'``, ``'cuda:1'``).
        dtype: Matrix dtype; default bf16 on CUDA, fp32 on the CPU.
        size: Side of the matrices; default :data:`CUDA_PEAK_SIZE` on CUDA,
            else calibrated so that one product takes about ``target_s``.
        warmup: Untimed repeats first.
        repeats: Timed repeats; the median is reported. On CUDA one repeat
            is 10 products between two synchronisations.
        target_s: CPU calibration target, seconds per product.

    Returns:
        The measurement, see :class:`MatmulPeak`.
    """
    device = torch.device(device)
    if device.type == 'cuda' and device.index is None:
        device = torch.device('cuda', torch.cuda.current_device())
    if dtype is None:
        dtype = torch.bfloat16 if device.type == 'cuda' else torch.float32
    if size is None:
        size = CUDA_PEAK_SIZE if device.type == 'cuda' else \
            calibrate_cpu_size(dtype, target_s)
    if repeats < 1:
        raise ValueError(f'repeats must be >= 1, got {repeats}')
    per_repeat = 10 if device.type == 'cuda' else 1
    generator = torch.Generator().manual_seed(0)
    a, b, out = _operands(size, device, dtype, generator)
    for _ in range(warmup):
        _time_products(a, b, out, per_repeat)
    seconds = statistics.median(
        _time_products(a, b, out, per_repeat) for _ in range(repeats))
    del a, b, out
    return MatmulPeak(
        device_name=device_name(device),
        dtype=str(dtype).replace('torch.', ''),
        size=size,
        seconds=seconds,
        flops_per_s=matmul_flops(size) / seconds)


def achieved_flops_per_s(step_flops: float, step_time_s: float) -> float:
    """FLOP/s of a step: its FLOPs over its wall time."""
    if step_time_s <= 0:
        raise ValueError(f'step_time_s must be > 0, got {step_time_s}')
    return step_flops / step_time_s


def model_flops_utilisation(step_flops: float, step_time_s: float,
                            peak_flops_per_s: float) -> float:
    """MFU as a fraction: ``step_flops / step_time_s / peak_flops_per_s``.

    Args:
        step_flops: FLOPs of one training step (the whole batch).
        step_time_s: Wall time of that step, seconds.
        peak_flops_per_s: The device's peak, e.g.
            :attr:`MatmulPeak.flops_per_s`.
    """
    if peak_flops_per_s <= 0:
        raise ValueError(
            f'peak_flops_per_s must be > 0, got {peak_flops_per_s}')
    return achieved_flops_per_s(step_flops, step_time_s) / peak_flops_per_s


# ----------------------------------------------------------------------------
# The training step whose FLOP/s MFU divides: its precision, its compilation,
# its timing
# ----------------------------------------------------------------------------
#: Step precisions and the optim-wrapper settings that give them.
PRECISIONS = ('fp32', 'bf16', 'fp16')
_SHORT_DTYPES = {'float32': 'fp32', 'bfloat16': 'bf16', 'float16': 'fp16'}


def precision_optim_wrapper_cfg(optim_cfg: Dict[str, Any],
                                precision: str) -> Dict[str, Any]:
    """A copy of a config's ``optim_wrapper`` that trains in ``precision``,
    whatever its own type says (its optimizer, clipping, ... are kept):

    * ``'fp32'``: ``OptimWrapper``;
    * ``'bf16'``: ``AutoAmpOptimWrapper(dtype='bfloat16',
      cpu_dtype='bfloat16')``: bf16 autocast on CUDA and on the CPU (fp16 +
      dynamic loss scaling on a GPU without bf16);
    * ``'fp16'``: mmengine's ``AmpOptimWrapper(dtype='float16')``, dynamic
      loss scaling (CUDA only).
    """
    if precision not in PRECISIONS:
        raise ValueError(f'precision must be one of {PRECISIONS}, got '
                         f'{precision!r}')
    optim_cfg = copy.deepcopy(dict(optim_cfg))
    for key in ('loss_scale', 'dtype', 'cpu_dtype', 'use_fsdp'):
        optim_cfg.pop(key, None)
    if precision == 'bf16':
        optim_cfg.update(type='AutoAmpOptimWrapper', dtype='bfloat16',
                         cpu_dtype='bfloat16')
    elif precision == 'fp16':
        optim_cfg.update(type='AmpOptimWrapper', dtype='float16',
                         loss_scale='dynamic')
    else:
        optim_cfg['type'] = 'OptimWrapper'
    return optim_cfg


def resolved_precision(optim_wrapper: Any) -> str:
    """What a built wrapper's autocast runs in: ``'fp32'`` / ``'bf16'`` /
    ``'fp16'`` (``AutoAmpOptimWrapper.precision``; ``AmpOptimWrapper``'s
    ``cast_dtype``, fp16 by default; fp32 for a plain ``OptimWrapper``)."""
    precision = getattr(optim_wrapper, 'precision', None)
    if precision is None and hasattr(optim_wrapper, 'loss_scaler'):
        dtype = getattr(optim_wrapper, 'cast_dtype', None) or torch.float16
        precision = str(dtype).replace('torch.', '')
    return _SHORT_DTYPES[precision or 'float32']


def compile_options(compile_cfg: Any,
                    flag: bool = False) -> Optional[Dict[str, Any]]:
    """``torch.compile`` kwargs from a config's ``compile`` field, read as
    MMEngine's ``Runner._maybe_compile`` reads it (None / False: off; True:
    defaults; a dict: the kwargs); ``flag`` turns it on with defaults."""
    if compile_cfg is None or isinstance(compile_cfg, bool):
        return {} if (compile_cfg or flag) else None
    return dict(compile_cfg)


@dataclass
class StepTiming:
    """What :func:`time_train_steps` measured.

    Attributes:
        step_time_s: Median wall time of the timed steps.
        step_times_s: Each timed step.
        compile_s: The first, compiling step (None: not compiled).
        peak_memory_mib: Peak allocated CUDA memory over warm-up and timed
            steps (None on the CPU).
    """
    step_time_s: float
    step_times_s: List[float]
    compile_s: Optional[float]
    peak_memory_mib: Optional[float]


def time_train_steps(model: torch.nn.Module,
                     data: Any,
                     optim_wrapper: Any,
                     steps: int,
                     warmup: int,
                     compile_kwargs: Optional[Dict[str, Any]] = None,
                     before_step: Optional[Callable[[int], None]] = None
                     ) -> StepTiming:
    """Time ``model.train_step(data, optim_wrapper)``, CUDA-synchronised.

    With ``compile_kwargs`` the step is first replaced by
    ``torch.compile(model.train_step, **compile_kwargs)`` (as MMEngine's
    Runner does) and run once, untimed (``compile_s``); then ``warmup``
    untimed and ``steps`` timed steps. ``before_step(i)`` is called before
    step ``i`` (0 = the compiling step when there is one).
    """
    device = next(model.parameters()).device
    index = 0

    def step() -> float:
        nonlocal index
        if before_step is not None:
            before_step(index)
        index += 1
        _synchronize(device)
        start = time.perf_counter()
        model.train_step(data, optim_wrapper)
        _synchronize(device)
        return time.perf_counter() - start

    compile_s = None
    if compile_kwargs is not None:
        model.train_step = torch.compile(model.train_step, **compile_kwargs)
        compile_s = step()
    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats(device)
    times = [step() for _ in range(warmup + steps)][warmup:]
    peak_memory = (torch.cuda.max_memory_allocated(device) / 2**20
                   if device.type == 'cuda' else None)
    return StepTiming(statistics.median(times), times, compile_s, peak_memory)
