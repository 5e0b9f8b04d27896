"""ConcentrationMonitorHook: κ of each image's chunk features (M-MoCo §3.4)
on fake models that store vMF samples of known concentration."""
import json
import os
import socket
from types import SimpleNamespace
from typing import Dict, List, Optional

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from mmengine.logging import MessageHub
from mmengine.model import (BaseModel, MMDistributedDataParallel,
                            is_model_wrapper)
from mmengine.runner import Runner, get_priority
from torch import Tensor, nn
from torch.utils.data import DataLoader

from mmmoma.engine.hooks import ConcentrationMonitorHook
from mmmoma.models.utils.von_mises_fisher import vmf_concentration

from ..test_models.test_utils.test_von_mises_fisher import sample_vmf

# Banerjee's estimate from n samples is biased upwards (R̄ of a finite
# sample overshoots): by about n / (n - 1) at large κ and more at small κ;
# with the paper's n = 8 chunks in d = 16 it reads 20-40 % high. The
# known-κ test uses 128 chunks per image: within ~5 %.
DIMS = 16
KAPPAS = {'rep': 30.0, 'projector': 60.0, 'predictor': 120.0}


def vmf_chunk_features(kappa: float, num_images: int, num_chunks: int,
                       seed: int) -> Tensor:
    """(num_images, num_chunks, DIMS) features: each image's chunks are vMF
    samples of concentration ``kappa`` around its own random direction,
    with random lengths (the hook must not assume unit vectors)."""
    generator = torch.Generator().manual_seed(seed)
    pole = torch.zeros(DIMS)
    pole[0] = 1.0
    samples = sample_vmf(pole, kappa, num_images * num_chunks,
                         generator).view(num_images, num_chunks, DIMS)
    # a random rotation per image moves its mean direction; κ is unchanged
    rotations, _ = torch.linalg.qr(
        torch.randn(num_images, DIMS, DIMS, generator=generator))
    lengths = 0.5 + torch.rand(
        num_images, num_chunks, 1, generator=generator)
    return samples @ rotations.transpose(1, 2) * lengths


def chunk_feature_set(num_images: int, num_chunks: int,
                      seed: int = 0) -> Dict[str, Tensor]:
    return {
        name: vmf_chunk_features(kappa, num_images, num_chunks, seed + i)
        for i, (name, kappa) in enumerate(KAPPAS.items())
    }


class ChunkRecorder(BaseModel):
    """The interface of MaskedMoCoV3 / MaskedBYOL: when
    ``record_chunk_features`` is set, the forward pass stores the next set
    of (B', n, d) features (a fresh clone) in ``chunk_features``."""

    def __init__(self, feature_sets: List[Dict[str, Tensor]],
                 num_chunks: int, records: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(2))
        self.num_chunks = num_chunks
        self.record_chunk_features = False
        self.chunk_features: Optional[Dict[str, Tensor]] = None
        self.feature_sets = feature_sets
        self.records = records
        self.stored: List[Dict[str, Tensor]] = []  # what it stored, in order
        self.flags: List[bool] = []  # the flag seen by each forward pass

    def forward(self, inputs: Tensor, data_samples=None, mode: str = 'loss'):
        self.flags.append(self.record_chunk_features)
        if self.record_chunk_features and self.records:
            features = self.feature_sets[len(self.stored) %
                                         len(self.feature_sets)]
            self.chunk_features = {k: v.clone() for k, v in features.items()}
            self.stored.append(self.chunk_features)
        return dict(loss=(self.weight * inputs).pow(2).mean())


def fake_runner(model: nn.Module, name: str) -> SimpleNamespace:
    return SimpleNamespace(model=model, iter=0,
                           message_hub=MessageHub(f'concentration_{name}'))


def run_iterations(hook: ConcentrationMonitorHook, runner: SimpleNamespace,
                   num_iters: int) -> List[Optional[Dict[str, Tensor]]]:
    """Train-loop hook calls around one forward pass per iteration; returns
    ``model.chunk_features`` after each iteration."""
    wrapped = runner.model
    model = wrapped.module if is_model_wrapper(wrapped) else wrapped
    hook.before_train(runner)
    left = []
    for iteration in range(num_iters):
        runner.iter = iteration
        hook.before_train_iter(runner, iteration)
        wrapped(torch.ones(1, 2))  # through the wrapper, if any
        hook.after_train_iter(runner, iteration)
        left.append(model.chunk_features)
    return left


def logged(message_hub: MessageHub, key: str) -> List[float]:
    if key not in message_hub.log_scalars:
        return []
    return message_hub.log_scalars[key].data[0].tolist()


def test_logged_kappa_matches_the_known_concentration():
    features = chunk_feature_set(num_images=8, num_chunks=128)
    model = ChunkRecorder([features], num_chunks=128)
    runner = fake_runner(model, 'known')
    run_iterations(ConcentrationMonitorHook(interval=1), runner, 1)

    assert len(model.stored) == 1
    for name, kappa in KAPPAS.items():
        value, = logged(runner.message_hub, f'train/kappa_{name}')
        assert abs(value - kappa) < 0.1 * kappa, (name, value, kappa)
        # exactly the per-image κ of what the model stored, averaged
        stored = model.stored[0][name]
        assert value == vmf_concentration(stored).mean().item()
        # per image: pooling all chunks of all images (each image has its
        # own mean direction) would read far lower
        pooled = vmf_concentration(stored.reshape(1, -1, DIMS)).item()
        assert pooled < 0.5 * kappa


def test_records_only_on_every_interval_th_iteration():
    sets = [chunk_feature_set(4, 4, seed=s) for s in (10, 20)]
    model = ChunkRecorder(sets, num_chunks=4)
    runner = fake_runner(model, 'interval')
    hook = ConcentrationMonitorHook(interval=3)
    left = run_iterations(hook, runner, 7)

    # mmengine's every_n_train_iters: 0-based iterations 2 and 5
    assert model.flags == [False, False, True, False, False, True, False]
    assert len(model.stored) == 2
    assert left == [None] * 7  # read and reset after each monitored one
    assert model.record_chunk_features is False
    for name in KAPPAS:
        values = logged(runner.message_hub, f'train/kappa_{name}')
        assert values == [
            vmf_concentration(stored[name]).mean().item()
            for stored in model.stored
        ]
        assert values[0] != values[1]  # each from its own iteration
    assert set(runner.message_hub.log_scalars) == {
        f'train/kappa_{name}' for name in KAPPAS
    }


def test_logs_only_the_keys_the_model_records():
    features = chunk_feature_set(4, 4)
    model = ChunkRecorder([{'rep': features['rep']}], num_chunks=4)
    runner = fake_runner(model, 'rep_only')
    run_iterations(ConcentrationMonitorHook(interval=2), runner, 4)
    assert set(runner.message_hub.log_scalars) == {'train/kappa_rep'}
    assert len(logged(runner.message_hub, 'train/kappa_rep')) == 2


def test_requested_but_not_recorded_raises():
    model = ChunkRecorder([chunk_feature_set(2, 4)], num_chunks=4,
                          records=False)
    runner = fake_runner(model, 'silent')
    hook = ConcentrationMonitorHook(interval=2)
    run_iterations(hook, runner, 1)  # iteration 0 is not monitored
    # stale features from an earlier iteration do not count either
    model.chunk_features = chunk_feature_set(2, 4)
    runner.iter = 1
    hook.before_train_iter(runner, 1)
    assert model.record_chunk_features is True
    model(torch.ones(1, 2))
    with pytest.raises(RuntimeError, match='ChunkRecorder did not record'):
        hook.after_train_iter(runner, 1)
    assert 'train/kappa_rep' not in runner.message_hub.log_scalars


def test_one_chunk_per_image_skips_the_run():
    """n = 1 (MoCo v3 / BYOL, Tables 1-2): κ is undefined, so the hook stays
    idle for the run instead of failing it (it used to raise)."""
    model = ChunkRecorder([chunk_feature_set(2, 4)], num_chunks=1)
    runner = fake_runner(model, 'one_chunk')
    hook = ConcentrationMonitorHook(interval=1)
    left = run_iterations(hook, runner, 3)
    assert hook.active is False
    assert model.flags == [False] * 3  # never asked to record
    assert model.stored == [] and left == [None] * 3
    assert runner.message_hub.log_scalars == {}


def test_one_chunk_per_image_trains_and_logs_the_skip(tmp_path):
    model = ChunkRecorder([chunk_feature_set(2, 4)], num_chunks=1)
    runner = Runner(
        model=model,
        work_dir=str(tmp_path),
        train_dataloader=DataLoader(
            [dict(inputs=torch.randn(2)) for _ in range(4)], batch_size=2),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        train_cfg=dict(by_epoch=False, max_iters=2),
        default_hooks=dict(
            checkpoint=None, logger=dict(type='LoggerHook', interval=1)),
        custom_hooks=[dict(type='ConcentrationMonitorHook', interval=1)],
        default_scope='mmpretrain',
        experiment_name=f'concentration_{tmp_path.name}')
    runner.train()
    assert model.flags == [False, False] and model.stored == []
    assert not [key for key in runner.message_hub.log_scalars
                if 'kappa' in key]
    log_files = [
        os.path.join(folder, name)
        for folder, _, names in os.walk(tmp_path) for name in names
        if name.endswith('.log')
    ]
    assert len(log_files) == 1
    with open(log_files[0]) as file:
        text = file.read()
    assert text.count('ConcentrationMonitorHook is skipped in this run: '
                      'model.num_chunks = 1') == 1


@pytest.mark.parametrize('missing', [
    'num_chunks', 'record_chunk_features', 'chunk_features'])
def test_model_without_the_interface_raises(missing):
    model = ChunkRecorder([], num_chunks=4)
    delattr(model, missing)
    with pytest.raises(TypeError, match=f"ChunkRecorder has no '{missing}'"):
        ConcentrationMonitorHook().before_train(fake_runner(model, missing))
    with pytest.raises(TypeError, match="Linear has no 'num_chunks'"):
        ConcentrationMonitorHook().before_train(
            fake_runner(nn.Linear(2, 2), f'linear_{missing}'))


@pytest.mark.parametrize('interval', [0, -1, 1.5, '50', True])
def test_interval_must_be_a_positive_int(interval):
    with pytest.raises(ValueError,
                       match='ConcentrationMonitorHook.interval must be a '
                       'positive int'):
        ConcentrationMonitorHook(interval=interval)


def test_runs_before_the_logger_hook():
    from mmengine.hooks import LoggerHook
    assert get_priority(ConcentrationMonitorHook.priority) < get_priority(
        LoggerHook.priority)


def test_kappa_reaches_the_log_of_a_real_runner(tmp_path):
    sets = [chunk_feature_set(4, 4, seed=s) for s in (30, 40)]
    model = ChunkRecorder(sets, num_chunks=4)
    dataset = [dict(inputs=torch.randn(2)) for _ in range(8)]
    runner = Runner(
        model=model,
        work_dir=str(tmp_path),
        train_dataloader=DataLoader(dataset, batch_size=2),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        train_cfg=dict(by_epoch=False, max_iters=4),
        default_hooks=dict(
            checkpoint=None, logger=dict(type='LoggerHook', interval=2)),
        custom_hooks=[dict(type='ConcentrationMonitorHook', interval=2)],
        default_scope='mmpretrain',
        experiment_name=f'concentration_{tmp_path.name}')
    runner.train()

    assert model.flags == [False, True, False, True]
    expected = [
        vmf_concentration(stored['rep']).mean().item()
        for stored in model.stored
    ]
    assert len(expected) == 2
    assert logged(runner.message_hub, 'train/kappa_rep') == expected
    assert model.chunk_features is None
    # ... and the log lines of iterations 2 and 4 (the scalars file the
    # LoggerHook writes through the visualiser)
    scalar_files = [
        os.path.join(folder, name)
        for folder, _, names in os.walk(tmp_path) for name in names
        if name == 'scalars.json'
    ]
    assert len(scalar_files) == 1
    with open(scalar_files[0]) as file:
        lines = [json.loads(line) for line in file]
    assert [(line['step'], line['kappa_rep']) for line in lines] == [
        (2, pytest.approx(expected[0])), (4, pytest.approx(expected[1]))
    ]
    assert all(f'kappa_{name}' in line for line in lines for name in KAPPAS)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def _worker(rank: int, world_size: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    dist.init_process_group('gloo', rank=rank, world_size=world_size)
    try:
        # rank-specific features; rank 1 has more images than rank 0
        features = chunk_feature_set(2 + rank, 4, seed=100 * rank)
        model = ChunkRecorder([features], num_chunks=4)
        runner = fake_runner(MMDistributedDataParallel(module=model),
                             f'rank{rank}')
        run_iterations(ConcentrationMonitorHook(interval=1), runner, 1)
        torch.save(
            dict(stored=model.stored[0],
                 logged={
                     name: logged(runner.message_hub, f'train/kappa_{name}')
                     for name in KAPPAS
                 }), f'{out}/rank{rank}.pth')
    finally:
        dist.destroy_process_group()


def test_two_gloo_processes_log_the_mean_over_processes(tmp_path):
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2)
    results = [torch.load(tmp_path / f'rank{rank}.pth') for rank in (0, 1)]
    assert results[0]['logged'] == results[1]['logged']
    for name in KAPPAS:
        per_rank = [
            vmf_concentration(result['stored'][name]).mean().item()
            for result in results
        ]
        assert per_rank[0] != pytest.approx(per_rank[1])
        assert results[0]['logged'][name] == [
            pytest.approx(sum(per_rank) / 2, rel=1e-6)
        ]
