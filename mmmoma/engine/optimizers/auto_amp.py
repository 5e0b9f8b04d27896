"""Mixed precision that picks the fastest safe dtype of the device it runs on.

mmengine's ``AmpOptimWrapper`` refuses to run without a GPU and always keeps
a ``GradScaler``, which bf16 does not need (its exponent range is fp32's) and
which reads ``found_inf`` back to the host at every step. The paper configs
therefore use :class:`AutoAmpOptimWrapper`:

=====================  =====================================================
device                 precision of the forward / backward
=====================  =====================================================
CUDA with bf16         ``torch.autocast('cuda', bfloat16)``, no loss scaler
CUDA without bf16      ``torch.autocast('cuda', float16)`` + dynamic scaler
                       (V100, T4: a warning says so)
CPU                    fp32 (``cpu_dtype=None``, the default: a laptop run
                       of a paper config), or ``torch.autocast('cpu',
                       bfloat16)`` with ``cpu_dtype='bfloat16'``
=====================  =====================================================

The device is that of the optimizer's parameters, i.e. where the Runner
has put the model before it builds the optim wrapper.
"""
import logging
from contextlib import contextmanager, nullcontext
from typing import Iterator, Optional

import torch
from mmengine.logging import print_log
from mmengine.optim import OptimWrapper
from mmengine.registry import OPTIM_WRAPPERS
from torch import nn

from mmmoma.models.utils.validation import one_of

#: dtypes ``dtype`` may name.
AUTOCAST_DTYPES = ('bfloat16', 'float16')
#: dtypes ``cpu_dtype`` may name (None: fp32, no autocast).
CPU_DTYPES = (None, 'bfloat16')


@OPTIM_WRAPPERS.register_module()
class AutoAmpOptimWrapper(OptimWrapper):
    """``OptimWrapper`` with autocast in the device's best low precision.

    Args:
        dtype (str): the preferred autocast dtype on an accelerator,
            ``'bfloat16'`` (default) or ``'float16'``. ``'bfloat16'`` falls
            back to ``'float16'`` with dynamic loss scaling on a CUDA device
            without bf16 support.
        cpu_dtype (str, optional): autocast dtype on the CPU: None (default:
            fp32, no autocast) or ``'bfloat16'``.
        loss_scale (str | float | dict): the ``GradScaler`` setting used only
            when training in float16 (``'dynamic'``, a static scale, or
            ``GradScaler`` kwargs). Defaults to ``'dynamic'``.
        **kwargs: ``OptimWrapper`` arguments (``optimizer``, ``clip_grad``,
            ``accumulative_counts``).

    Attributes:
        device_type (str): where the parameters live (``'cuda'``, ``'cpu'``).
        cast_dtype (torch.dtype | None): the autocast dtype; None for fp32.
        loss_scaler (GradScaler | None): set only for float16.
    """

    def __init__(self,
                 dtype: str = 'bfloat16',
                 cpu_dtype: Optional[str] = None,
                 loss_scale='dynamic',
                 **kwargs) -> None:
        one_of(dtype, AUTOCAST_DTYPES, 'optim_wrapper.dtype')
        one_of(cpu_dtype, CPU_DTYPES, 'optim_wrapper.cpu_dtype')
        super().__init__(**kwargs)
        self.device_type = _parameter_device_type(self.optimizer)
        self.cast_dtype = self._resolve_dtype(dtype, cpu_dtype)
        self.loss_scaler = None
        self._static_scale = (loss_scale
                              if isinstance(loss_scale, float) else None)
        if self.cast_dtype == torch.float16:
            self.loss_scaler = _build_grad_scaler(loss_scale,
                                                  self.device_type)
        print_log(
            f'AutoAmpOptimWrapper: {self.precision} on {self.device_type}'
            + (' with dynamic loss scaling' if self.loss_scaler else ''),
            logger='current', level=logging.INFO)

    @property
    def precision(self) -> str:
        """``'bfloat16'``, ``'float16'`` or ``'float32'``."""
        return str(self.cast_dtype or torch.float32).replace('torch.', '')

    def _resolve_dtype(self, dtype: str,
                       cpu_dtype: Optional[str]) -> Optional[torch.dtype]:
        if self.device_type == 'cpu':
            return None if cpu_dtype is None else getattr(torch, cpu_dtype)
        if (dtype == 'bfloat16' and self.device_type == 'cuda'
                and not torch.cuda.is_bf16_supported()):
            print_log(
                'AutoAmpOptimWrapper: this GPU has no bfloat16 support; '
                'training in float16 with dynamic loss scaling instead',
                logger='current', level=logging.WARNING)
            return torch.float16
        return getattr(torch, dtype)

    def backward(self, loss: torch.Tensor, **kwargs) -> None:
        """Back-propagate ``loss`` (scaled when training in float16)."""
        if self.loss_scaler is not None:
            loss = self.loss_scaler.scale(loss)
        loss.backward(**kwargs)
        self._inner_count += 1

    def step(self, **kwargs) -> None:
        """Clip gradients if configured, then step (through the scaler in
        float16, which skips steps with non-finite gradients)."""
        if self.loss_scaler is None:
            return super().step(**kwargs)
        if self.clip_grad_kwargs:
            self.loss_scaler.unscale_(self.optimizer)
            self._clip_grad()
        self.loss_scaler.step(self.optimizer, **kwargs)
        self.loss_scaler.update(self._static_scale)

    def state_dict(self) -> dict:
        """The optimizer's state, plus ``loss_scaler`` in float16."""
        state_dict = super().state_dict()
        if self.loss_scaler is not None:
            state_dict['loss_scaler'] = self.loss_scaler.state_dict()
        return state_dict

    def load_state_dict(self, state_dict: dict) -> None:
        """Load a state saved by this wrapper, ``AmpOptimWrapper`` or
        ``OptimWrapper``; a ``loss_scaler`` entry is used in float16 and
        dropped otherwise (bf16 and fp32 need no scale)."""
        state_dict = dict(state_dict)
        scaler_state = state_dict.pop('loss_scaler', None)
        if scaler_state is not None and self.loss_scaler is not None:
            self.loss_scaler.load_state_dict(scaler_state)
        super().load_state_dict(state_dict)

    @contextmanager
    def optim_context(self, model: nn.Module) -> Iterator[None]:
        """The parent's context (gradient accumulation) under autocast."""
        autocast = (nullcontext() if self.cast_dtype is None else
                    torch.autocast(self.device_type, dtype=self.cast_dtype))
        with super().optim_context(model), autocast:
            yield


def _parameter_device_type(optimizer: torch.optim.Optimizer) -> str:
    for group in optimizer.param_groups:
        for param in group['params']:
            return param.device.type
    return 'cpu'


def _build_grad_scaler(loss_scale, device_type: str) -> torch.amp.GradScaler:
    if loss_scale == 'dynamic':
        return torch.amp.GradScaler(device_type)
    if isinstance(loss_scale, float):
        return torch.amp.GradScaler(device_type, init_scale=loss_scale)
    if isinstance(loss_scale, dict):
        return torch.amp.GradScaler(device_type, **loss_scale)
    raise TypeError("optim_wrapper.loss_scale must be 'dynamic', a float or "
                    f'a dict of GradScaler arguments, got {loss_scale!r}')
