"""Save and restore random-number-generator states with checkpoints."""
from typing import Any, Dict, List, Optional

from mmengine.dist import all_gather_object, get_dist_info, is_distributed
from mmengine.hooks import CheckpointHook, Hook
from mmengine.runner import EpochBasedTrainLoop
from mmpretrain.registry import HOOKS
from torch.utils.data import DataLoader

from mmmoma.utils.dataloader_workers import EpochSeededWorkers
from mmmoma.utils.rng import get_rng_state, set_rng_state


@HOOKS.register_module()
class RNGStateHook(Hook):
    """Make ``--resume`` continue the random streams of the interrupted run.

    MMEngine re-seeds but does not restore RNG states on resume, so random
    masks, augmentations and dropout after a resume differ from those of an
    uninterrupted run. This hook stores every rank's python / numpy / torch
    states in the checkpoint (``checkpoint['rng_state']``, a list indexed by
    rank) and restores them when resuming with the same world size.

    ``Runner.save_checkpoint`` runs on rank 0 only, so in distributed runs the
    states are all-gathered just before the ``CheckpointHook`` (this hook has
    a higher priority) at every point where it may save: each epoch end for
    epoch-based checkpoints, each ``interval``-th and the last iteration for
    iteration-based ones.

    Dataloader workers: at ``before_train`` the train loader gets
    :class:`~mmmoma.utils.dataloader_workers.EpochSeededWorkers`, which
    seeds each worker at each epoch from (seed, epoch, rank, worker id) and
    keeps iterator creation off the main RNG, so resumed epochs draw the
    same augmentations and masks as uninterrupted ones with
    ``persistent_workers=True`` too (MMEngine seeds a worker once, when it
    starts). Resumes are exact at epoch boundaries (epoch-based
    checkpoints, or iteration-based loops, which replay the loader).
    """
    priority = 'LOW'  # before CheckpointHook (VERY_LOW)

    def __init__(self) -> None:
        self._gathered: Optional[List[Dict[str, Any]]] = None
        self._workers: Optional[EpochSeededWorkers] = None

    def before_train(self, runner) -> None:
        # iteration-based loops start their workers when they are built;
        # their resumes replay the loader, which is exact already
        if not isinstance(runner.train_loop, EpochBasedTrainLoop):
            return
        loader = runner.train_loop.dataloader
        if not isinstance(loader, DataLoader):
            return
        rank, _ = get_dist_info()
        self._workers = EpochSeededWorkers.install(loader, runner.seed, rank)

    def before_train_epoch(self, runner) -> None:
        if self._workers is not None:
            self._workers.set_epoch(runner.epoch)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        checkpoint_hook = self._checkpoint_hook(runner)
        if checkpoint_hook is None or checkpoint_hook.by_epoch:
            return
        if (self.every_n_train_iters(runner, checkpoint_hook.interval)
                or self.is_last_train_iter(runner)):
            self._gather()

    def after_train_epoch(self, runner) -> None:
        checkpoint_hook = self._checkpoint_hook(runner)
        if checkpoint_hook is not None and checkpoint_hook.by_epoch:
            self._gather()

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if not is_distributed():
            checkpoint['rng_state'] = [get_rng_state()]
        elif self._gathered is not None:
            checkpoint['rng_state'] = self._gathered
        else:
            runner.logger.warning(
                'RNGStateHook: RNG states were not gathered before this '
                'checkpoint; saving rank 0 only')
            checkpoint['rng_state'] = [get_rng_state()]
        self._gathered = None

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if not getattr(runner, '_resume', False):
            return  # loading weights to fine-tune: keep this run's seeds
        states = checkpoint.get('rng_state')
        if states is None:
            runner.logger.warning(
                'RNGStateHook: the checkpoint has no rng_state; random '
                'streams after resume will differ from an uninterrupted run')
            return
        rank, world_size = get_dist_info()
        if len(states) != world_size:
            runner.logger.warning(
                f'RNGStateHook: checkpoint saved with {len(states)} ranks, '
                f'resuming with {world_size}; RNG states not restored')
            return
        set_rng_state(states[rank])

    def _gather(self) -> None:
        if is_distributed():
            self._gathered = all_gather_object(get_rng_state())

    @staticmethod
    def _checkpoint_hook(runner) -> Optional[CheckpointHook]:
        for hook in runner.hooks:
            if isinstance(hook, CheckpointHook):
                return hook
        return None
