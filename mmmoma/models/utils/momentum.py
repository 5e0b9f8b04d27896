"""Exponential moving averages of networks (SdAE's teacher, MimCo's momentum
projectors, M-MoCo's momentum encoder): the update, its cosine
schedule, and the momentum-target protocol that declares them."""
import math
from typing import Dict, Optional

import torch
from torch import nn

from .validation import one_of


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


#: when the EMA is updated (by ``TeacherEMAHook``)
MOMENTUM_UPDATES = ('iter', 'epoch')


class MomentumTarget:
    """The momentum-target protocol of an algorithm: its EMA pairs, their
    cosine schedule, when they are updated, and which one transfers.

    One instance per algorithm (SdAE's EMA teacher, MimCo's momentum
    projectors, M-MoCo's momentum encoder), kept as ``model.momentum_target``
    and read by ``TeacherEMAHook`` and the checkpoint bridge. Modules are
    named by their path in the owner (``'teacher'``,
    ``'momentum_encoder.backbone'``) and looked up at each update, so a
    deep copy, ``.to(device)`` or DDP keeps working; the module names keep
    the owner's state-dict keys as they are.

    Args:
        owner (nn.Module): the algorithm.
        pairs (dict[str, str]): ``average path -> source path``: the average
            follows the source (``average ← m·average + (1 − m)·source``).
        base_momentum (float): m at progress 0, in [0, 1].
        end_momentum (float): m at progress 1, in [0, 1].
        update (str): ``'iter'`` or ``'epoch'`` (:data:`MOMENTUM_UPDATES`).
        progress (str): with ``update='iter'`` in an epoch-based loop,
            ``'iter'`` (m from iter / max_iters) or ``'epoch'`` (the
            epoch's m, constant within it: SdAE's official per-iteration
            mode).
        counter (str, optional): name of a long buffer of the owner counted
            up at every update (saved in checkpoints).
        transfer_encoder (str, optional): the path of the average that is an
            encoder worth transferring (``--encoder teacher`` of the bridge);
            None: nothing to transfer (e.g. projectors only).
        name (str): the owner's class name, for config fields in errors.
    """

    def __init__(self,
                 owner: nn.Module,
                 pairs: Dict[str, str],
                 base_momentum: float,
                 end_momentum: float,
                 update: str = 'iter',
                 progress: str = 'iter',
                 counter: Optional[str] = None,
                 transfer_encoder: Optional[str] = None,
                 name: Optional[str] = None) -> None:
        name = name or type(owner).__name__
        self.owner = owner
        self.pairs = dict(pairs)
        self.base_momentum = check_unit_interval(base_momentum,
                                                 f'{name}.base_momentum')
        self.end_momentum = check_unit_interval(end_momentum,
                                                f'{name}.end_momentum')
        self.update_every = one_of(update, MOMENTUM_UPDATES,
                                   f'{name}.momentum_update')
        self.progress = one_of(progress, MOMENTUM_UPDATES,
                               f'{name}.momentum_progress')
        self.counter = counter
        if transfer_encoder is not None and transfer_encoder not in pairs:
            raise ValueError(f'transfer_encoder={transfer_encoder!r} is not '
                             f'one of the averages {sorted(pairs)}')
        self.transfer_encoder = transfer_encoder

    def momentum(self, progress: float) -> float:
        """The scheduled m at ``progress`` in [0, 1] (:func:`cosine_momentum`).
        """
        return cosine_momentum(self.base_momentum, self.end_momentum,
                               progress)

    @torch.no_grad()
    def update(self, momentum: float) -> None:
        """``average ← m · average + (1 − m) · source`` for every pair.

        Args:
            momentum (float): m in [0, 1]; 0 copies the sources.
        """
        for average, source in self.pairs.items():
            ema_update_(self.owner.get_submodule(average),
                        self.owner.get_submodule(source), momentum)
        if self.counter is not None:
            getattr(self.owner, self.counter).add_(1)

    def freeze_averages(self) -> None:
        """The averages get no gradients (only EMA updates change them)."""
        for average in self.pairs:
            self.owner.get_submodule(average).requires_grad_(False)

    def transfer_prefix(self) -> str:
        """The state-dict key prefix of the transferable average, e.g.
        ``'teacher.'``; '' when there is none."""
        return '' if self.transfer_encoder is None else \
            f'{self.transfer_encoder}.'

    def describe(self) -> dict:
        """What a checkpoint's ``meta['momentum_target']`` records (read by
        the checkpoint bridge)."""
        return dict(owner=type(self.owner).__name__, pairs=dict(self.pairs),
                    transfer_prefix=self.transfer_prefix())


class WithMomentumTarget:
    """Mixin of algorithms with a :class:`MomentumTarget` (set as
    ``self.momentum_target``): the schedule and the update as methods of the
    model, for tests and scripts; ``TeacherEMAHook`` reads the component."""

    momentum_target: MomentumTarget

    @property
    def momentum_update(self) -> str:
        """``'iter'`` or ``'epoch'``: when the averages are updated."""
        return self.momentum_target.update_every

    @property
    def base_momentum(self) -> float:
        return self.momentum_target.base_momentum

    @property
    def end_momentum(self) -> float:
        return self.momentum_target.end_momentum

    def teacher_momentum(self, progress: float) -> float:
        """The scheduled EMA momentum m at ``progress`` in [0, 1]."""
        return self.momentum_target.momentum(progress)

    def update_teacher(self, momentum: float) -> None:
        """One EMA update of every average (see
        :meth:`MomentumTarget.update`)."""
        self.momentum_target.update(momentum)
