"""Drive the EMA teacher update of self-distillation algorithms (SdAE)."""
from mmengine.hooks import Hook
from mmengine.runner import EpochBasedTrainLoop
from mmpretrain.registry import HOOKS

from .utils import algorithm_with


@HOOKS.register_module()
class TeacherEMAHook(Hook):
    """Update an algorithm's EMA teacher after every epoch or iteration.

    The algorithm (e.g. ``SdAE``) owns the schedule and the update; this hook
    only says when. It reads ``model.momentum_update``:

    * ``'epoch'``: after each training epoch ``e`` (0-based), with
      ``m = model.teacher_momentum(e / max_epochs)`` (the official SdAE code:
      ``momentum_schedule[epoch]`` at the end of every epoch);
    * ``'iter'``: after each training iteration ``i``, with
      ``m = model.teacher_momentum(i / max_iters)`` (fractional progress:
      MimCo, M-MoCo); a model whose ``momentum_progress`` attribute is
      ``'epoch'`` (SdAE: the official per-iteration mode takes
      ``momentum_schedule[epoch]``) gets ``m = model.teacher_momentum(e /
      max_epochs)`` in an epoch-based loop, constant within epoch ``e``.

    and calls ``model.update_teacher(m)``. The chosen ``m`` is logged as
    ``teacher_momentum``. The hook runs before ``CheckpointHook`` (priority
    ``ABOVE_NORMAL`` vs ``VERY_LOW``), so a checkpoint saved at the same point
    holds the updated teacher and ``--resume`` continues it exactly.
    """
    priority = 'ABOVE_NORMAL'

    @staticmethod
    def _algorithm(runner):
        return algorithm_with(
            runner, 'TeacherEMAHook', 'with an EMA teacher',
            ('momentum_update', 'teacher_momentum', 'update_teacher'),
            'SdAE')

    def before_train(self, runner) -> None:
        model = self._algorithm(runner)
        if model.momentum_update == 'epoch' and not isinstance(
                runner.train_loop, EpochBasedTrainLoop):
            raise ValueError(
                f'{type(model).__name__}.momentum_update=\'epoch\' needs an '
                'epoch-based train loop (train_cfg.type='
                f'EpochBasedTrainLoop), got '
                f'{type(runner.train_loop).__name__}; use '
                'momentum_update=\'iter\' with iteration-based training')

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        model = self._algorithm(runner)
        if model.momentum_update == 'iter':
            if getattr(model, 'momentum_progress', 'iter') == 'epoch' and \
                    isinstance(runner.train_loop, EpochBasedTrainLoop):
                progress = runner.epoch / runner.max_epochs
            else:
                progress = runner.iter / runner.max_iters
            self._update(runner, model, progress)

    def after_train_epoch(self, runner) -> None:
        model = self._algorithm(runner)
        if model.momentum_update == 'epoch':
            self._update(runner, model, runner.epoch / runner.max_epochs)

    @staticmethod
    def _update(runner, model, progress: float) -> None:
        momentum = model.teacher_momentum(progress)
        model.update_teacher(momentum)
        runner.message_hub.update_scalar('train/teacher_momentum', momentum)
