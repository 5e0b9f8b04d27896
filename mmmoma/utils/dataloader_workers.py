"""Dataloader worker processes: seeded by epoch, and dying with the parent.

* :func:`exit_with_parent` makes a worker receive SIGKILL when the process
  that started it dies (Linux ``PR_SET_PDEATHSIG``). torch's own watchdog
  only notices a dead parent while the worker waits for work; a worker
  blocked on a full result pipe (whose read end its sibling workers still
  hold open after a fork) stays alive for good — 520 MB each after a
  ``kill -9`` of a training run.
* :class:`EpochSeededWorkers` seeds every worker at the start of every epoch
  from (seed, epoch, rank, worker id). MMEngine seeds a worker once, when it
  starts: with ``persistent_workers=True`` the workers keep their random
  streams across epochs, so a resumed run (whose workers start afresh)
  draws different augmentations and masks than the uninterrupted one. With
  a per-epoch seed both runs draw the same, with persistent workers or not.
"""
import ctypes
import multiprocessing
import os
import random
import signal
import sys
from typing import Callable, List, Optional

import numpy as np
import torch
from torch.utils.data import DataLoader, get_worker_info

__all__ = [
    'EpochSeededWorkers', 'exit_with_parent',
    'mmengine_worker_init_exiting_with_parent', 'worker_seed'
]

_PR_SET_PDEATHSIG = 1


def exit_with_parent() -> bool:
    """Ask the kernel to SIGKILL this process when its parent dies.

    Returns:
        bool: False where unsupported (not Linux); nothing changes then.
    """
    if not sys.platform.startswith('linux'):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) != 0:
            return False
    except (OSError, AttributeError):
        return False
    if os.getppid() == 1:  # the parent died before prctl took effect
        os._exit(1)
    return True


def mmengine_worker_init_exiting_with_parent(worker_id: int, *args,
                                             **kwargs) -> None:
    """MMEngine's ``worker_init_fn`` (same arguments), then
    :func:`exit_with_parent`. A module-level function, so that loaders with
    the ``spawn`` start method can pickle it."""
    from mmengine.dataset import worker_init_fn
    worker_init_fn(worker_id, *args, **kwargs)
    exit_with_parent()


def worker_seed(seed: int, epoch: int, rank: int, worker_id: int) -> int:
    """A 32-bit seed that depends on all four numbers (and nothing else).

    Args:
        seed (int): the run's seed (``randomness.seed``; per-rank if
            ``diff_rank_seed``).
        epoch (int): 0-based epoch.
        rank (int): distributed rank.
        worker_id (int): dataloader worker id.

    Returns:
        int: in [0, 2**32).
    """
    entropy = [int(seed) % 2**32, int(epoch) % 2**32, int(rank) % 2**32,
               int(worker_id) % 2**32]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class _ReseedingGetItems:
    """Worker-side ``dataset.__getitems__``: reseed on a new epoch, then
    fetch the batch as torch's fetcher would."""

    def __init__(self, dataset, seeder: 'EpochSeededWorkers',
                 worker_id: int) -> None:
        self.dataset = dataset
        self.original = getattr(dataset, '__getitems__', None)
        self.seeder = seeder
        self.worker_id = worker_id
        self.epoch: Optional[int] = None

    def __call__(self, indices: List[int]) -> list:
        epoch = self.seeder.epoch
        if epoch != self.epoch:
            self.epoch = epoch
            _seed_everything(worker_seed(self.seeder.seed, epoch,
                                         self.seeder.rank, self.worker_id))
        if self.original is not None:
            return self.original(indices)
        return [self.dataset[index] for index in indices]


class EpochSeededWorkers:
    """A ``worker_init_fn`` that reseeds workers at each epoch.

    Install it on a built ``DataLoader`` before its workers start
    (:meth:`install`), then call :meth:`set_epoch` before each epoch's
    ``iter(loader)``. The epoch travels to the (persistent) workers through
    a shared-memory integer; a worker reseeds python / numpy / torch with
    :func:`worker_seed` when it fetches the first batch of an epoch. The
    loader's ``generator`` is set too, so creating a loader iterator no
    longer draws from the main process's torch RNG (with persistent workers
    only the first epoch creates one, so an uninterrupted and a resumed run
    would otherwise consume the main RNG differently).

    Needs map-style datasets fetched in batches (``batch_size`` set), as
    MMEngine builds them.

    Args:
        seed (int): the run's seed.
        rank (int): distributed rank.
        base_init_fn (callable, optional): the loader's previous
            ``worker_init_fn``, called first.
    """

    def __init__(self, seed: int, rank: int,
                 base_init_fn: Optional[Callable[[int], None]] = None
                 ) -> None:
        self.seed = int(seed)
        self.rank = int(rank)
        self.base_init_fn = base_init_fn
        # inherited by forked workers, passed to spawned ones at start
        self._epoch = multiprocessing.RawValue('q', 0)

    @property
    def epoch(self) -> int:
        return int(self._epoch.value)

    def set_epoch(self, epoch: int) -> None:
        """Seed the coming epoch's batches (call before ``iter(loader)``)."""
        self._epoch.value = int(epoch)

    def __call__(self, worker_id: int) -> None:
        if self.base_init_fn is not None:
            self.base_init_fn(worker_id)
        exit_with_parent()
        info = get_worker_info()
        dataset = info.dataset
        # an instance attribute: torch's fetcher looks __getitems__ up on
        # the (worker's copy of the) dataset object
        dataset.__getitems__ = _ReseedingGetItems(dataset, self, worker_id)

    @classmethod
    def install(cls, loader: DataLoader, seed: int,
                rank: int) -> Optional['EpochSeededWorkers']:
        """Put an instance on ``loader``; returns it (None without
        workers, or when one is installed already)."""
        if not loader.num_workers:
            return None
        if isinstance(loader.worker_init_fn, cls):
            return loader.worker_init_fn
        seeder = cls(seed, rank, loader.worker_init_fn)
        loader.worker_init_fn = seeder
        generator = torch.Generator()
        generator.manual_seed(worker_seed(seed, 2**31, rank, 2**31))
        loader.generator = generator
        return seeder
