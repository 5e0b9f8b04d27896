"""Test helpers: faults injected into real training runs (imported by the
configs that ``test_fault_injection.py`` writes, via ``custom_imports``)."""
import os

import torch
from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS

from mmmoma.engine.hooks import AtomicCheckpointHook
from mmmoma.engine.hooks.utils import unwrapped_model

#: exit code of a process "killed" by these hooks
KILLED = 3


def _die() -> None:
    os._exit(KILLED)  # like kill -9: no clean-up, no further saving


@HOOKS.register_module()
class NaNLossAtIterHook(Hook):
    """Multiply the first loss term by NaN at 1-based iteration ``iteration``
    (all later ones too: a diverged run stays diverged)."""
    priority = 'LOWEST'

    def __init__(self, iteration: int) -> None:
        self.iteration = iteration

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        if runner.iter + 1 != self.iteration:
            return
        model = unwrapped_model(runner)
        loss = model.loss

        def nan_loss(*args, **kwargs):
            losses = loss(*args, **kwargs)
            name = next(key for key in losses if 'loss' in key)
            losses[name] = losses[name] * torch.tensor(float('nan'))
            return losses

        model.loss = nan_loss


@HOOKS.register_module()
class FaultyCheckpointHook(AtomicCheckpointHook):
    """``AtomicCheckpointHook`` killed at ``phase`` of save number ``save``.

    Phases: ``'before_write'``, ``'mid_write'`` (half the bytes of the new
    checkpoint are on disk), ``'before_pointer'`` (the new file is complete,
    ``last_checkpoint`` not yet updated), ``'before_delete'`` (pointer
    updated, outdated checkpoints not yet deleted).
    """

    def __init__(self, phase: str, save: int, **kwargs) -> None:
        super().__init__(**kwargs)
        assert phase in ('before_write', 'mid_write', 'before_pointer',
                         'before_delete'), phase
        self.phase = phase
        self.save = save
        self.saves = 0

    def _write(self, runner, partial_name, meta) -> None:
        self.saves += 1
        if self._fails('before_write'):
            _die()
        super()._write(runner, partial_name, meta)
        if self._fails('mid_write'):
            path = os.path.join(self.out_dir, partial_name)
            with open(path, 'r+b') as f:
                f.truncate(os.path.getsize(path) // 2)
            _die()

    def _update_pointer(self, runner, final_path) -> None:
        if self._fails('before_pointer'):
            _die()
        super()._update_pointer(runner, final_path)

    def _delete_outdated(self, paths) -> None:
        if self._fails('before_delete'):
            _die()
        super()._delete_outdated(paths)

    def _fails(self, phase: str) -> bool:
        return self.phase == phase and self.saves == self.save
