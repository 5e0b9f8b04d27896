"""Faults injected into real ``tools/train.py`` runs: a NaN loss, and a kill
at each phase of a checkpoint save followed by ``--resume``.

The runs use the MAE demo config on tiny data with the shipped loader
settings (2 persistent workers), 4 iterations per epoch, a checkpoint each
epoch and ``max_keep_ckpts=1``, the setting in which MMEngine loses the
last good checkpoint.

The runs that are killed, and their resumption, are ``tools/train.py``
processes; the others (no process dies) run the same tool's ``main``
in-process. All of them use one intra-op thread, so that in-process and
subprocess weights compare bit for bit.
"""
import os.path as osp
import sys

import pytest
import torch

from mmmoma.utils.checkpoint_files import is_complete_checkpoint

from . import fault_hooks
from .fault_hooks import KILLED
from .utils import MAE_DEMO, pretrain_overrides, python, run, train_in_process

HERE = osp.dirname(osp.abspath(__file__))
EPOCHS = 3


def options(data_root, *extra):
    return pretrain_overrides(
        data_root, max_epochs=EPOCHS, shipped_loader=True) + [
            'default_hooks.checkpoint.max_keep_ckpts=1', *extra]


def train(config, work_dir, opts, extra=()):
    """A ``tools/train.py`` process (one thread)."""
    return run([python(), 'tools/train.py', str(config), '--work-dir',
                str(work_dir), *extra, '--cfg-options', *opts],
               env={'PYTHONPATH': HERE, 'OMP_NUM_THREADS': '1'})


def train_here(config, work_dir, opts, extra=(), sys_path=()):
    """``tools/train.py``'s ``main`` in this process (one thread); returns
    the logged text, raises what the run raises."""
    # the configs' custom_imports of 'fault_hooks': the module this test
    # imported (its hooks are registered once)
    sys.modules.setdefault('fault_hooks', fault_hooks)
    return train_in_process(config, work_dir, opts, extra=extra, threads=1,
                            sys_path=[HERE, *sys_path])


def with_hooks(tmp_path, name, hooks, default_hooks=''):
    """The MAE demo config plus test hooks from ``fault_hooks``."""
    path = tmp_path / f'{name}.py'
    path.write_text(
        f'_base_ = [{MAE_DEMO!r}]\n'
        "custom_imports = dict(imports=['mmmoma', 'fault_hooks'], "
        'allow_failed_imports=False)\n'
        f'custom_hooks = _base_.custom_hooks + [{hooks}]\n' +
        (f'default_hooks = dict({default_hooks})\n' if default_hooks else ''))
    return path


def state_dict(path):
    return torch.load(path, map_location='cpu')['state_dict']


def pointer(work_dir):
    return (work_dir / 'last_checkpoint').read_text().strip()


@pytest.fixture(scope='module')
def uninterrupted(tmp_path_factory, tiny_image_folder):
    """Weights after each epoch of a run without faults."""
    work = tmp_path_factory.mktemp('uninterrupted')
    opts = options(tiny_image_folder,
                   'default_hooks.checkpoint.max_keep_ckpts=10')
    train_here(MAE_DEMO, work, opts)
    return {epoch: state_dict(work / f'epoch_{epoch}.pth')
            for epoch in range(1, EPOCHS + 1)}


def assert_same(want, got):
    assert want.keys() == got.keys()
    for key in want:
        assert torch.equal(want[key], got[key]), key


# ------------------------------------------------------------------ NaN
def test_nan_loss_stops_training_and_keeps_the_last_good_checkpoint(
        tmp_path, tiny_image_folder, uninterrupted):
    """Iteration 6 (epoch 2) gets a NaN loss: the run exits non-zero with
    a message naming the iteration and the loss term, and epoch 1's
    checkpoint (the only one kept) is intact, finite and the one
    last_checkpoint names."""
    config = with_hooks(tmp_path, 'nan',
                        "dict(type='NaNLossAtIterHook', iteration=6)")
    work = tmp_path / 'work'
    with pytest.raises(Exception) as error:
        train_here(config, work, options(tiny_image_folder))
    assert type(error.value).__name__ == 'NonFiniteTrainingError'
    assert str(error.value).startswith(
        'non-finite loss at iteration 6 (epoch 2): loss=nan')
    assert sorted(p.name for p in work.glob('*.pth')) == ['epoch_1.pth']
    assert pointer(work) == str(work / 'epoch_1.pth')
    saved = state_dict(work / 'epoch_1.pth')
    assert all(torch.isfinite(v).all() for v in saved.values()
               if v.is_floating_point())
    assert_same(uninterrupted[1], saved)


def test_nan_steps_are_skipped_up_to_max_skipped_steps(
        tmp_path, tiny_image_folder, uninterrupted):
    """With max_skipped_steps=4 the bad steps 9-12 (all of epoch 3) are
    skipped, logged, and leave the weights as they were after epoch 2;
    training ends normally. With 3 it stops at the fourth bad step."""
    config = with_hooks(tmp_path, 'skip',
                        "dict(type='NaNLossAtIterHook', iteration=9)")
    work = tmp_path / 'skip4'
    log = train_here(config, work, options(
        tiny_image_folder,
        'default_hooks.non_finite_guard.max_skipped_steps=4'))
    for count, iteration in enumerate((9, 10, 11, 12), 1):
        assert f'non-finite loss at iteration {iteration} (epoch 3): ' \
            f'loss=nan; optimizer step skipped ({count} of ' \
            'max_skipped_steps=4)' in log
    assert_same(uninterrupted[2], state_dict(work / 'epoch_3.pth'))

    with pytest.raises(Exception) as error:
        train_here(config, tmp_path / 'skip3', options(
            tiny_image_folder,
            'default_hooks.non_finite_guard.max_skipped_steps=3'))
    assert type(error.value).__name__ == 'NonFiniteTrainingError'
    assert 'non-finite loss at iteration 12 (epoch 3)' in str(error.value)
    assert '3 step(s) skipped so far' in str(error.value)


# ------------------------------------------------- kills during saving
#: phase killed during save 2 -> (files left, checkpoint resumed from)
PHASES = {
    'before_write': (['epoch_1.pth'], 1),
    'mid_write': (['epoch_1.pth', 'epoch_2.pth.partial'], 1),
    'before_pointer': (['epoch_1.pth', 'epoch_2.pth'], 2),
    'before_delete': (['epoch_1.pth', 'epoch_2.pth'], 2),
}


@pytest.mark.parametrize('phase', sorted(PHASES))
def test_kill_during_a_save_then_resume_from_the_newest_good_checkpoint(
        tmp_path, tiny_image_folder, uninterrupted, phase):
    files, resumed_from = PHASES[phase]
    config = with_hooks(
        tmp_path, 'faulty', '',
        default_hooks=f"checkpoint=dict(type='FaultyCheckpointHook', "
        f"phase={phase!r}, save=2, _delete_=True, interval=1, "
        'max_keep_ckpts=1)')
    work = tmp_path / 'work'
    proc = train(config, work, options(tiny_image_folder))
    assert proc.returncode == KILLED, proc.stderr[-3000:]
    assert sorted(p.name for p in work.iterdir()
                  if '.pth' in p.name) == files
    assert pointer(work) == str(work / (
        'epoch_2.pth' if phase == 'before_delete' else 'epoch_1.pth'))
    for name in files:
        assert is_complete_checkpoint(str(work / name)) == (
            not name.endswith('.partial'))

    proc = train(MAE_DEMO, work, options(tiny_image_folder),
                 extra=['--resume'])
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = proc.stdout + proc.stderr
    assert f'resumed epoch: {resumed_from}' in log
    if phase == 'before_pointer':  # the pointer lags: said, then ignored
        assert 'is newer and complete' in log
    # the resumed run ends where the uninterrupted one does, bit for bit,
    # and cleaned up: one checkpoint, no partial file
    assert_same(uninterrupted[EPOCHS],
                state_dict(work / f'epoch_{EPOCHS}.pth'))
    assert sorted(p.name for p in work.iterdir() if '.pth' in p.name) == \
        [f'epoch_{EPOCHS}.pth']


def test_resume_from_a_partial_file_names_it(tmp_path, tiny_image_folder):
    partial = tmp_path / 'epoch_2.pth'
    partial.write_bytes(b'PK\x03\x04' + b'\0' * 100)
    with pytest.raises(Exception) as error:
        train_here(MAE_DEMO, tmp_path / 'work', options(tiny_image_folder),
                   extra=['--resume', str(partial)])
    assert f'--resume {partial}: the checkpoint is truncated or not a ' \
        'torch.save file' in str(error.value)


def test_non_finite_weights_are_never_saved(tmp_path, tiny_image_folder):
    """Weights that turn non-finite without a bad loss or gradient (here
    set by a hook after the last epoch's steps) are refused at save time:
    the last epoch's checkpoint is not written, epoch 2's survives."""
    hook_module = tmp_path / 'poison_hook.py'
    hook_module.write_text(
        'import torch\n'
        'from mmengine.hooks import Hook\n'
        'from mmpretrain.registry import HOOKS\n'
        '@HOOKS.register_module()\n'
        'class PoisonHook(Hook):\n'
        "    priority = 'NORMAL'  # before the checkpoint hook\n"
        '    def after_train_epoch(self, runner):\n'
        f'        if runner.epoch == {EPOCHS - 1}:\n'
        '            with torch.no_grad():\n'
        "                runner.model.backbone.cls_token.fill_(float('nan'))"
        '\n')
    config = tmp_path / 'poison.py'
    config.write_text(
        f'_base_ = [{MAE_DEMO!r}]\n'
        "custom_imports = dict(imports=['mmmoma', 'poison_hook'], "
        'allow_failed_imports=False)\n'
        "custom_hooks = _base_.custom_hooks + [dict(type='PoisonHook')]\n")
    work = tmp_path / 'work'
    with pytest.raises(Exception) as error:
        train_here(config, work, options(tiny_image_folder),
                   sys_path=[tmp_path])
    assert type(error.value).__name__ == 'NonFiniteTrainingError'
    assert 'refusing to save a checkpoint' in str(error.value)
    assert '(backbone.cls_token)' in str(error.value)
    assert sorted(p.name for p in work.glob('*.pth*')) == ['epoch_2.pth']
    assert pointer(work) == str(work / 'epoch_2.pth')
    assert torch.isfinite(
        state_dict(work / 'epoch_2.pth')['backbone.cls_token']).all()
