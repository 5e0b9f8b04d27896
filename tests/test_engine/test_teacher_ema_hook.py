"""TeacherEMAHook inside real (tiny) mmengine training runs of SdAE."""
import os.path as osp
from typing import Dict, List, Optional

import pytest
import torch
from mmengine.hooks import CheckpointHook, Hook
from mmengine.runner import Runner
from mmpretrain.registry import MODELS
from torch import Tensor

from mmmoma.engine.hooks import TeacherEMAHook
from mmmoma.models.selfsup.sdae import SdAE

from ..helpers import (SELFSUP_PREPROCESSOR, folder_loader, tiny_mae_model,
                       tiny_sdae_cfg)

BATCH_SIZE = 4  # 16 training images: 4 iterations per epoch
ITERS_PER_EPOCH = 4


pytestmark = pytest.mark.usefixtures('one_thread')


def tiny_sdae(tiny_arch: dict, momentum_update: str) -> SdAE:
    torch.manual_seed(0)
    model = MODELS.build(
        tiny_sdae_cfg(
            tiny_arch,
            base_momentum=0.9,
            end_momentum=0.99,
            momentum_update=momentum_update,
            data_preprocessor=SELFSUP_PREPROCESSOR))
    model.init_weights()
    return model


def snapshot(module: torch.nn.Module) -> Dict[str, Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def same(a: Dict[str, Tensor], b: Dict[str, Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


class TeacherProbe(Hook):
    """Records the teacher after every iteration and epoch (after the EMA
    hook, which has a higher priority)."""
    priority = 'LOW'

    def __init__(self) -> None:
        self.after_iter: List[Dict[str, Tensor]] = []
        self.after_epoch: List[Dict[str, Tensor]] = []

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        self.after_iter.append(snapshot(runner.model.teacher))

    def after_train_epoch(self, runner) -> None:
        self.after_epoch.append(snapshot(runner.model.teacher))


def record_updates(model: SdAE) -> List[tuple]:
    """Wrap ``model.momentum_target.update`` (what the hook calls) to record
    (momentum, student, teacher) at every call, before the update."""
    calls = []
    update = model.momentum_target.update

    def recording_update(momentum: float) -> None:
        calls.append((momentum, snapshot(model.backbone),
                      snapshot(model.teacher)))
        update(momentum)

    model.momentum_target.update = recording_update
    return calls


def make_runner(model, data_root: str, work_dir: str, train_cfg: dict,
                hooks: Optional[list] = None,
                checkpoint: Optional[dict] = None) -> Runner:
    return Runner(
        model=model,
        work_dir=work_dir,
        train_dataloader=folder_loader(
            data_root, 'train', batch_size=BATCH_SIZE, shuffle=True),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=1e-3)),
        train_cfg=train_cfg,
        default_hooks=dict(checkpoint=checkpoint),
        custom_hooks=[dict(type='TeacherEMAHook')] + list(hooks or []),
        default_scope='mmpretrain',
        randomness=dict(seed=0),
        experiment_name=f'teacher_ema_{osp.basename(work_dir)}')


def replay(initial: Dict[str, Tensor], calls: List[tuple]) -> Dict:
    """The teacher after applying φ ← m·φ + (1 − m)·θ for every call."""
    teacher = {k: v.clone() for k, v in initial.items()}
    for momentum, student, _ in calls:
        teacher = {k: momentum * v + (1 - momentum) * student[k]
                   for k, v in teacher.items()}
    return teacher


def test_epoch_mode_updates_once_per_epoch(tiny_image_folder, tmp_path,
                                           tiny_arch):
    model = tiny_sdae(tiny_arch, 'epoch')
    initial = snapshot(model.teacher)
    calls = record_updates(model)
    probe = TeacherProbe()
    max_epochs = 3
    runner = make_runner(
        model, tiny_image_folder, str(tmp_path),
        dict(by_epoch=True, max_epochs=max_epochs), hooks=[probe],
        checkpoint=dict(type='CheckpointHook', interval=1))
    runner.train()

    assert model.teacher_updates.item() == max_epochs
    assert len(probe.after_iter) == max_epochs * ITERS_PER_EPOCH
    # momentum of the update after epoch e (0-based): m(e / max_epochs)
    assert [m for m, _, _ in calls] == pytest.approx(
        [model.teacher_momentum(e / max_epochs) for e in range(max_epochs)])
    assert calls[0][0] == pytest.approx(0.9)
    assert runner.message_hub.get_scalar(
        'train/teacher_momentum').current() == pytest.approx(calls[-1][0])

    # within an epoch the teacher stays put; it moves at the epoch's end
    previous = initial
    for epoch in range(max_epochs):
        iters = probe.after_iter[epoch * ITERS_PER_EPOCH:(epoch + 1) *
                                 ITERS_PER_EPOCH]
        assert all(same(teacher, previous) for teacher in iters)
        assert same(calls[epoch][2], previous)  # updated from there
        assert not same(probe.after_epoch[epoch], previous)
        previous = probe.after_epoch[epoch]
    # ... by the EMA of the student at that moment
    want = replay(initial, calls)
    for key, value in model.teacher.state_dict().items():
        torch.testing.assert_close(value, want[key], atol=1e-6, rtol=0)

    # the hook runs before CheckpointHook: each checkpoint holds the
    # teacher updated at that epoch's end
    names = [type(hook).__name__ for hook in runner.hooks]
    assert names.index('TeacherEMAHook') < names.index('CheckpointHook')
    for epoch in range(max_epochs):
        state = torch.load(tmp_path / f'epoch_{epoch + 1}.pth',
                           map_location='cpu',
                           weights_only=False)['state_dict']
        assert state['teacher_updates'].item() == epoch + 1
        for key, value in probe.after_epoch[epoch].items():
            assert torch.equal(state[f'teacher.{key}'], value), key


def test_iter_mode_updates_after_every_iteration(tiny_image_folder,
                                                 tmp_path, tiny_arch):
    model = tiny_sdae(tiny_arch, 'iter')
    initial = snapshot(model.teacher)
    calls = record_updates(model)
    probe = TeacherProbe()
    max_iters = 6
    runner = make_runner(model, tiny_image_folder, str(tmp_path),
                         dict(by_epoch=False, max_iters=max_iters),
                         hooks=[probe])
    runner.train()

    assert model.teacher_updates.item() == max_iters
    assert [m for m, _, _ in calls] == pytest.approx(
        [model.teacher_momentum(i / max_iters) for i in range(max_iters)])
    previous = initial
    for teacher in probe.after_iter:
        assert not same(teacher, previous)
        previous = teacher
    want = replay(initial, calls)
    for key, value in model.teacher.state_dict().items():
        torch.testing.assert_close(value, want[key], atol=1e-6, rtol=0)
    # the student changed between updates: each update used the current one
    assert not same(calls[0][1], calls[-1][1])


def test_iter_mode_in_an_epoch_loop_uses_the_epoch_momentum(
        tiny_image_folder, tmp_path, tiny_arch):
    # SdAE (momentum_target.progress='epoch'): the official per-iteration
    # mode, momentum_schedule[epoch] applied after every iteration
    model = tiny_sdae(tiny_arch, 'iter')
    assert model.momentum_target.progress == 'epoch'
    calls = record_updates(model)
    max_epochs = 2
    runner = make_runner(model, tiny_image_folder, str(tmp_path),
                         dict(by_epoch=True, max_epochs=max_epochs))
    runner.train()
    max_iters = max_epochs * ITERS_PER_EPOCH
    assert model.teacher_updates.item() == max_iters
    want = [model.teacher_momentum(e / max_epochs)
            for e in range(max_epochs) for _ in range(ITERS_PER_EPOCH)]
    assert [m for m, _, _ in calls] == pytest.approx(want)
    assert want[0] == pytest.approx(0.9) and want[-1] != want[0]


def test_iter_mode_with_iter_progress_is_fractional(
        tiny_image_folder, tmp_path, tiny_arch):
    # models that do not ask for epoch progress (MimCo, M-MoCo) keep
    # iter / max_iters in an epoch loop
    model = tiny_sdae(tiny_arch, 'iter')
    model.momentum_target.progress = 'iter'
    calls = record_updates(model)
    runner = make_runner(model, tiny_image_folder, str(tmp_path),
                         dict(by_epoch=True, max_epochs=2))
    runner.train()
    max_iters = 2 * ITERS_PER_EPOCH
    assert model.teacher_updates.item() == max_iters
    assert [m for m, _, _ in calls] == pytest.approx(
        [model.teacher_momentum(i / max_iters) for i in range(max_iters)])


def test_epoch_mode_with_an_iteration_loop_raises(tiny_image_folder,
                                                  tmp_path, tiny_arch):
    model = tiny_sdae(tiny_arch, 'epoch')
    runner = make_runner(model, tiny_image_folder, str(tmp_path),
                         dict(by_epoch=False, max_iters=2))
    with pytest.raises(ValueError, match='momentum_update'):
        runner.train()
    assert model.teacher_updates.item() == 0


def test_model_without_a_teacher_raises(tiny_image_folder, tmp_path,
                                        tiny_arch):
    runner = make_runner(tiny_mae_model(tiny_arch), tiny_image_folder,
                         str(tmp_path), dict(by_epoch=True, max_epochs=1))
    with pytest.raises(TypeError, match='update_teacher|momentum_update'):
        runner.train()


def test_priority_is_above_checkpoint_hook():
    from mmengine.runner import get_priority
    assert get_priority(TeacherEMAHook.priority) < get_priority(
        CheckpointHook.priority)
