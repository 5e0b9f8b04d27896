"""Dataloader workers: per-epoch seeds (exact resume with persistent
workers) and no orphans after the parent is killed."""
import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from mmmoma.utils.dataloader_workers import EpochSeededWorkers, worker_seed


class RandomDraws(Dataset):
    """Item i = (i, python, numpy and torch draws in the worker)."""

    def __len__(self):
        return 8

    def __getitem__(self, index):
        return torch.tensor([index, random.random(), np.random.rand(),
                             torch.rand(()).item()], dtype=torch.float64)


def loader(persistent):
    return DataLoader(RandomDraws(), batch_size=2, num_workers=2,
                      persistent_workers=persistent,
                      multiprocessing_context='fork')


def epochs(persistent, first, last):
    """Batches of epochs first..last, from a loader built at ``first`` (a
    resumed run builds its loader afresh)."""
    data = loader(persistent)
    seeder = EpochSeededWorkers.install(data, seed=5, rank=0)
    out = {}
    for epoch in range(first, last + 1):
        seeder.set_epoch(epoch)
        out[epoch] = torch.cat(list(data))
    return out


def test_worker_seed_depends_on_every_argument():
    base = worker_seed(0, 1, 2, 3)
    assert base == worker_seed(0, 1, 2, 3)
    others = {worker_seed(1, 1, 2, 3), worker_seed(0, 2, 2, 3),
              worker_seed(0, 1, 3, 3), worker_seed(0, 1, 2, 4)}
    assert base not in others and len(others) == 4
    assert 0 <= base < 2**32


@pytest.mark.parametrize('persistent', [True, False])
def test_a_resumed_loader_draws_what_the_uninterrupted_one_drew(persistent):
    straight = epochs(persistent, 0, 2)
    resumed = epochs(persistent, 2, 2)
    assert torch.equal(straight[2], resumed[2])
    # and epochs differ from each other (the seed moves with the epoch)
    assert not torch.equal(straight[0][:, 1:], straight[1][:, 1:])


def test_persistent_and_fresh_workers_draw_the_same():
    assert all(torch.equal(a, b) for a, b in zip(
        epochs(True, 0, 1).values(), epochs(False, 0, 1).values()))


def test_iterating_never_touches_the_main_process_rng():
    """With persistent workers only the first epoch creates an iterator;
    it must not consume the main RNG, or masks drawn there after a resume
    (which creates one more iterator) drift."""
    data = loader(True)
    seeder = EpochSeededWorkers.install(data, seed=5, rank=0)
    torch.manual_seed(0)
    state = torch.get_rng_state()
    for epoch in range(2):
        seeder.set_epoch(epoch)
        list(data)
    assert torch.equal(state, torch.get_rng_state())


def test_install_is_idempotent_and_skips_main_process_loading():
    data = loader(True)
    first = EpochSeededWorkers.install(data, seed=1, rank=0)
    assert EpochSeededWorkers.install(data, seed=1, rank=0) is first
    no_workers = DataLoader(RandomDraws(), batch_size=2)
    assert EpochSeededWorkers.install(no_workers, seed=1, rank=0) is None
    assert no_workers.worker_init_fn is None


ORPHAN_SCRIPT = textwrap.dedent('''
    import sys, time
    import numpy as np
    import mmmoma  # noqa: F401  (compat: workers exit with their parent)
    from mmengine.runner import Runner
    from torch.utils.data import Dataset

    class Big(Dataset):
        """1 MiB numpy items: they travel through the result pipe, which
        the unread prefetched batches fill."""

        def __len__(self):
            return 10 ** 6

        def __getitem__(self, index):
            return np.zeros(2 ** 20, np.uint8)

    loader = Runner.build_dataloader(
        dict(dataset=Big(), batch_size=2, num_workers=2,
             persistent_workers=True,
             sampler=dict(type='DefaultSampler', shuffle=False)), seed=0)
    iterator = iter(loader)
    next(iterator)
    print(' '.join(str(w.pid) for w in iterator._workers), flush=True)
    time.sleep(600)
''')


def alive(pid):
    """Running, not a zombie awaiting its reaper."""
    try:
        with open(f'/proc/{pid}/stat') as f:
            return f.read().split(')')[-1].split()[0] != 'Z'
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not sys.platform.startswith('linux'),
                    reason='PR_SET_PDEATHSIG is Linux-only')
def test_workers_die_with_a_killed_parent():
    """kill -9 of the process that owns a Runner-built loader: its worker
    processes (which otherwise fill the result pipe and block for good)
    are gone within seconds."""
    proc = subprocess.Popen([sys.executable, '-c', ORPHAN_SCRIPT],
                            stdout=subprocess.PIPE, text=True)
    workers = []
    try:
        workers = [int(pid) for pid in proc.stdout.readline().split()]
        assert len(workers) == 2 and all(alive(pid) for pid in workers)
        time.sleep(1.0)  # let the workers fill the pipe and block
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        deadline = time.time() + 10
        while time.time() < deadline and any(alive(p) for p in workers):
            time.sleep(0.1)
        assert not any(alive(pid) for pid in workers)
    finally:
        if proc.poll() is None:
            proc.kill()
        for pid in workers:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
