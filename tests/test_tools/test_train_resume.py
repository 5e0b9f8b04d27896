"""Resume after an interruption reproduces the uninterrupted run exactly
(CPU), for each method, with the shipped loader settings (2 workers,
``persistent_workers=True``): python / numpy / torch states of the main
process come from the checkpoint, and the workers are seeded per epoch
(``RNGStateHook``).

The MAE test kills a ``tools/train.py`` process and resumes in another
process, as a user would; the other methods run the same tool in-process
(``tools/train.py``'s ``main``, isolated from each other), interrupted by a
hook that raises after the epoch checkpoint is saved.
"""
import os.path as osp

import pytest
import torch

from .utils import (MAE_DEMO, MIMCO_DEMO, MMOCO_DEMO, REPO_ROOT, SDAE_DEMO,
                    pretrain_overrides, python, run, train_in_process)

MOMA_DEMO = osp.join(
    REPO_ROOT, 'configs', 'demo',
    'moma-mae-to-mocov3_vit-tiny-p4_1xb128-24e_digit-scenes.py')

HERE = osp.dirname(osp.abspath(__file__))


def train(config, work_dir, options, extra=()):
    return run([python(), 'tools/train.py', config, '--work-dir',
                str(work_dir), *extra, '--cfg-options', *options],
               env={'PYTHONPATH': HERE})


def weights(path):
    return torch.load(path, map_location='cpu')['state_dict']


def kill_and_resume(config, tmp_path, options):
    """Train 4 epochs; train again, killed after epoch 2, then --resume
    (three ``tools/train.py`` processes).

    Returns:
        tuple[dict, dict, dict]: state dicts of the uninterrupted epoch 4,
        the resumed epoch 4 and the interrupted epoch 2.
    """
    full = train(config, tmp_path / 'full', options)
    assert full.returncode == 0, full.stderr[-3000:]

    # Same config, plus a hook that kills the process after epoch 2.
    killed_cfg = tmp_path / 'killed.py'
    killed_cfg.write_text(
        f"_base_ = [{config!r}]\n"
        "custom_imports = dict(imports=['mmmoma', 'exit_hook'], "
        "allow_failed_imports=False)\n"
        "custom_hooks = _base_.custom_hooks + "
        "[dict(type='ExitAfterEpochHook', epoch=2)]\n")
    work = tmp_path / 'resumed'
    killed = train(str(killed_cfg), work, options)
    assert killed.returncode == 3, killed.stderr[-3000:]
    assert osp.exists(work / 'epoch_2.pth')
    assert not osp.exists(work / 'epoch_3.pth')

    resumed = train(config, work, options, extra=['--resume'])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert 'resumed epoch: 2' in (resumed.stdout + resumed.stderr).lower() \
        or 'Load checkpoint from' in resumed.stdout + resumed.stderr

    return (weights(tmp_path / 'full' / 'epoch_4.pth'),
            weights(work / 'epoch_4.pth'), weights(work / 'epoch_2.pth'))


def interrupt_and_resume(config, tmp_path, options):
    """:func:`kill_and_resume` in this process: train 4 epochs; train
    again, interrupted after epoch 2 (a hook raises once the epoch's
    checkpoint is saved), then --resume; one thread (tiny models).

    Returns:
        tuple[dict, dict, dict]: as :func:`kill_and_resume`.
    """
    def train_here(cfg, work_dir, extra=()):
        return train_in_process(cfg, work_dir, options, extra=extra,
                                threads=1, sys_path=[HERE])

    train_here(config, tmp_path / 'full')

    # Same config, plus a hook that interrupts training after epoch 2.
    interrupted_cfg = tmp_path / 'interrupted.py'
    interrupted_cfg.write_text(
        f"_base_ = [{config!r}]\n"
        "custom_imports = dict(imports=['mmmoma', 'exit_hook'], "
        "allow_failed_imports=False)\n"
        "custom_hooks = _base_.custom_hooks + "
        "[dict(type='RaiseAfterEpochHook', epoch=2)]\n")
    work = tmp_path / 'resumed'
    with pytest.raises(RuntimeError,
                       match='training interrupted after epoch 2'):
        train_here(interrupted_cfg, work)
    assert osp.exists(work / 'epoch_2.pth')
    assert not osp.exists(work / 'epoch_3.pth')

    log = train_here(config, work, extra=['--resume'])
    assert 'resumed epoch: 2' in log.lower() or 'Load checkpoint from' in log

    return (weights(tmp_path / 'full' / 'epoch_4.pth'),
            weights(work / 'epoch_4.pth'), weights(work / 'epoch_2.pth'))


def assert_same(want, got):
    assert want.keys() == got.keys()
    for key in want:
        assert torch.equal(want[key], got[key]), key


def test_kill_after_epoch_then_resume_matches_uninterrupted(
        tmp_path, tiny_image_folder):
    options = pretrain_overrides(tiny_image_folder, max_epochs=4,
                                 shipped_loader=True)
    want, got, mid = kill_and_resume(MAE_DEMO, tmp_path, options)
    assert_same(want, got)
    # and training did move the weights between epoch 2 and 4
    assert any(not torch.equal(mid[k], want[k]) for k in want)


def test_sdae_resume_restores_the_ema_teacher_exactly(tmp_path,
                                                      tiny_image_folder):
    """The EMA teacher (and its update count) continue exactly after a
    kill: TeacherEMAHook updates it before the epoch checkpoint is saved."""
    options = pretrain_overrides(tiny_image_folder, max_epochs=4,
                                 shipped_loader=True) + [
        'model.backbone.arch.num_layers=2', 'model.neck.decoder_depth=1']
    want, got, mid = interrupt_and_resume(SDAE_DEMO, tmp_path, options)
    assert_same(want, got)
    assert int(mid['teacher_updates']) == 2
    assert int(want['teacher_updates']) == 4
    teacher_keys = [key for key in want if key.startswith('teacher.')]
    assert teacher_keys
    # the teacher moved between epoch 2 and 4 (two EMA updates)
    assert any(not torch.equal(mid[key], want[key]) for key in teacher_keys
               if 'pos_embed' not in key)


def test_mimco_resume_restores_queues_and_momentum_projectors(
        tmp_path, tiny_image_folder, tiny_arch):
    """MimCo's key queues (keys and write pointers) and its momentum
    projectors continue exactly after a kill; the frozen teacher is not in
    the checkpoints but rebuilt from its own file."""
    from mmmoma.models.backbones import MaskedViT
    vit = dict(img_size=32, patch_size=4, out_type='featmap')
    teacher = MaskedViT(arch=tiny_arch, **vit)
    teacher_ckpt = tmp_path / 'teacher.pth'
    torch.save({'state_dict': {'backbone.' + key: value
                               for key, value in
                               teacher.state_dict().items()}}, teacher_ckpt)
    batch_size, queue_length = 4, 12  # 4 steps / epoch; 16 keys wrap 12
    options = pretrain_overrides(
        tiny_image_folder, max_epochs=4, batch_size=batch_size,
        shipped_loader=True) + [
        f'model.teacher.checkpoint={teacher_ckpt}',
        f'model.patch_queue_length={queue_length}',
        f'model.image_queue_length={queue_length}',
    ]
    for net in ('model.backbone', 'model.teacher.network'):
        options += [f'{net}.arch.{key}={value}'
                    for key, value in tiny_arch.items()]
    options += ['model.patch_projector.hidden_channels=32',
                'model.patch_projector.out_channels=16',
                'model.patch_predictor.hidden_channels=32',
                'model.image_projector.hid_channels=32',
                'model.image_projector.out_channels=16',
                'model.image_predictor.hid_channels=32']

    want, got, mid = interrupt_and_resume(MIMCO_DEMO, tmp_path, options)
    assert_same(want, got)
    assert not [key for key in want if key.startswith('teacher.')]
    steps_per_epoch = 16 // batch_size
    for prefix in ('patch', 'image'):
        # one batch of keys per step: 8 steps by epoch 2, 16 by epoch 4
        for epoch, state in ((2, mid), (4, want)):
            assert int(state[f'{prefix}_head.queue.ptr']) == (
                epoch * steps_per_epoch * batch_size % queue_length)
        assert int(mid[f'{prefix}_head.queue.ptr']) == 8
        assert int(want[f'{prefix}_head.queue.ptr']) == 4
        # the queue wrapped around: every slot was rewritten after epoch 2
        queue = f'{prefix}_head.queue.keys'
        assert not torch.isclose(mid[queue], want[queue]).all(1).any()
        momentum = [key for key in want
                    if key.startswith(f'{prefix}_head.momentum_projector.')]
        assert momentum
        # the momentum projector moved between epoch 2 and 4
        assert any(not torch.equal(mid[key], want[key]) for key in momentum
                   if key.endswith('weight'))


def test_mmoco_resume_restores_the_momentum_encoder_exactly(
        tmp_path, tiny_image_folder, tiny_arch):
    """M-MoCo's momentum encoder (updated every iteration by
    TeacherEMAHook) and the random chunk shuffles continue exactly after a
    kill."""
    options = pretrain_overrides(tiny_image_folder, max_epochs=4,
                                 shipped_loader=True) + [
        f'model.backbone.arch.{key}={value}'
        for key, value in tiny_arch.items()
    ] + ['model.neck.hid_channels=32', 'model.neck.out_channels=16',
         'model.predictor.hid_channels=32',
         'custom_hooks.2.interval=1']  # the kappa monitor every iteration
    want, got, mid = interrupt_and_resume(MMOCO_DEMO, tmp_path, options)
    assert_same(want, got)
    momentum_keys = [key for key in want
                     if key.startswith('momentum_encoder.')]
    assert {key.split('.')[1] for key in momentum_keys} == {
        'backbone', 'neck'}
    # the momentum encoder moved between epoch 2 and 4, and trails the
    # online encoder (m < 1) instead of equalling it
    moved = [key for key in momentum_keys
             if not torch.equal(mid[key], want[key])]
    assert len(moved) > len(momentum_keys) // 2
    online = want['backbone.layers.0.attn.qkv.weight']
    target = want['momentum_encoder.backbone.layers.0.attn.qkv.weight']
    assert not torch.equal(online, target)


def test_moma_resume_matches_uninterrupted(tmp_path, tiny_image_folder):
    """MOMA: the student (initialised from a file), its projector and the
    random masks continue exactly; the frozen teacher is rebuilt from its
    own file and never saved."""
    from mmengine.config import Config

    from mmmoma.models.backbones import MaskedViT
    vit = dict(Config.fromfile(MOMA_DEMO).tiny_vit)
    vit.pop('type')
    checkpoint = tmp_path / 'vit.pth'
    torch.save({'state_dict': {'backbone.' + key: value for key, value in
                               MaskedViT(**vit).state_dict().items()}},
               checkpoint)
    options = pretrain_overrides(tiny_image_folder, max_epochs=4,
                                 shipped_loader=True) + [
        f'model.teachers.mae.teacher.checkpoint={checkpoint}',
        f'model.backbone.init_cfg.checkpoint={checkpoint}']
    want, got, mid = interrupt_and_resume(MOMA_DEMO, tmp_path, options)
    assert_same(want, got)
    assert not [key for key in want if key.startswith('teachers.')]
    student = [key for key in want if key.startswith('backbone.')]
    assert any(not torch.equal(mid[key], want[key]) for key in student)
