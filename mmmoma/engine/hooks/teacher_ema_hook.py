"""Drive the momentum targets (EMA teachers, momentum encoders / projectors)
of the pre-training algorithms."""
from mmengine.hooks import Hook
from mmengine.runner import EpochBasedTrainLoop
from mmpretrain.registry import HOOKS

from ...models.utils.momentum import MomentumTarget
from .utils import unwrapped_model


def momentum_target_of(runner) -> MomentumTarget:
    """The runner's model's ``model.momentum_target``.

    Raises:
        TypeError: for a model without one, naming the protocol.
    """
    model = unwrapped_model(runner)
    target = getattr(model, 'momentum_target', None)
    if not isinstance(target, MomentumTarget):
        raise TypeError(
            f'TeacherEMAHook needs a model with a momentum target '
            f'(model.momentum_target, a MomentumTarget: momentum_update, '
            f'teacher_momentum, update_teacher), e.g. SdAE, MimCo, '
            f'MaskedMoCoV3; {type(model).__name__} has none')
    return target


@HOOKS.register_module()
class TeacherEMAHook(Hook):
    """Update an algorithm's momentum target after every epoch / iteration.

    The algorithm's :class:`MomentumTarget` owns the pairs, the schedule and
    the update; this hook only says when, from ``target.update_every``:

    * ``'epoch'``: after each training epoch ``e`` (0-based), with
      ``m = target.momentum(e / max_epochs)`` (the official SdAE code:
      ``momentum_schedule[epoch]`` at the end of every epoch);
    * ``'iter'``: after each training iteration ``i``, with
      ``m = target.momentum(i / max_iters)`` (fractional progress: MimCo,
      M-MoCo); a target whose ``progress`` is ``'epoch'`` (SdAE: the
      official per-iteration mode takes ``momentum_schedule[epoch]``) gets
      ``m = target.momentum(e / max_epochs)`` in an epoch-based loop,
      constant within epoch ``e``.

    and calls ``target.update(m)``. The chosen ``m`` is logged as
    ``teacher_momentum``. The hook runs before ``CheckpointHook`` (priority
    ``ABOVE_NORMAL`` vs ``VERY_LOW``), so a checkpoint saved at the same point
    holds the updated averages and ``--resume`` continues them exactly; each
    checkpoint records ``meta['momentum_target']`` (the pairs and the
    transferable encoder's key prefix, read by the checkpoint bridge).
    """
    priority = 'ABOVE_NORMAL'

    def before_train(self, runner) -> None:
        target = momentum_target_of(runner)
        if target.update_every == 'epoch' and not isinstance(
                runner.train_loop, EpochBasedTrainLoop):
            name = type(target.owner).__name__
            raise ValueError(
                f'{name}.momentum_update=\'epoch\' needs an epoch-based '
                'train loop (train_cfg.type=EpochBasedTrainLoop), got '
                f'{type(runner.train_loop).__name__}; use '
                'momentum_update=\'iter\' with iteration-based training')

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        target = momentum_target_of(runner)
        if target.update_every == 'iter':
            if target.progress == 'epoch' and \
                    isinstance(runner.train_loop, EpochBasedTrainLoop):
                progress = runner.epoch / runner.max_epochs
            else:
                progress = runner.iter / runner.max_iters
            self._update(runner, target, progress)

    def after_train_epoch(self, runner) -> None:
        target = momentum_target_of(runner)
        if target.update_every == 'epoch':
            self._update(runner, target, runner.epoch / runner.max_epochs)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint.setdefault('meta', {})['momentum_target'] = \
            momentum_target_of(runner).describe()

    @staticmethod
    def _update(runner, target: MomentumTarget, progress: float) -> None:
        momentum = target.momentum(progress)
        target.update(momentum)
        runner.message_hub.update_scalar('train/teacher_momentum', momentum)
