"""Exponential moving averages of networks (SdAE's teacher, MimCo's momentum
projectors) and their cosine momentum schedule."""
import math

import torch
from torch import nn


def check_unit_interval(value: float, name: str) -> float:
    """Validate a momentum.

    Args:
        value (float): the value to check.
        name (str): the config field named in the error message.

    Returns:
        float: ``value`` as a float.

    Raises:
        ValueError: unless ``value`` is a number in [0, 1].
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not 0.0 <= value <= 1.0:
        raise ValueError(f'{name} must be a float in [0, 1], got {value!r}')
    return float(value)


def cosine_momentum(base: float, end: float, progress: float) -> float:
    """EMA momentum on a half-cosine from ``base`` to ``end``.

    ``m = end + (base − end) · (1 + cos(π · progress)) / 2`` (SdAE's
    ``cosine_scheduler``; with ``end = 1`` the MoCo v3 / BYOL / MoBY
    schedule); ``progress`` is ``epoch / max_epochs`` for per-epoch updates
    and ``iter / max_iters`` for per-iteration updates.

    Args:
        base (float): momentum at progress 0.
        end (float): momentum at progress 1.
        progress (float): in [0, 1].

    Returns:
        float: the momentum m.
    """
    return end + (base - end) * (1.0 + math.cos(math.pi * progress)) / 2.0


@torch.no_grad()
def ema_update_(average: nn.Module, source: nn.Module,
                momentum: float) -> None:
    """``average ← m · average + (1 − m) · source``, in place.

    Parameters are averaged; buffers (e.g. BatchNorm statistics) are copied.
    Both modules must have the same parameter and buffer names.

    Args:
        average (nn.Module): the moving average (teacher / momentum network).
        source (nn.Module): the trained network.
        momentum (float): m in [0, 1].
    """
    momentum = check_unit_interval(momentum, 'momentum')
    source_params = dict(source.named_parameters())
    for name, param in average.named_parameters():
        param.mul_(momentum).add_(
            source_params[name].detach().to(param.dtype),
            alpha=1.0 - momentum)
    source_buffers = dict(source.named_buffers())
    for name, buffer in average.named_buffers():
        buffer.copy_(source_buffers[name])
