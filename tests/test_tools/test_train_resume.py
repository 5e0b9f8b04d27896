"""Resume after a kill reproduces the uninterrupted run exactly (CPU)."""
import os.path as osp

import torch

from .utils import MAE_DEMO, SDAE_DEMO, pretrain_overrides, python, run

HERE = osp.dirname(osp.abspath(__file__))


def train(config, work_dir, options, extra=()):
    return run([python(), 'tools/train.py', config, '--work-dir',
                str(work_dir), *extra, '--cfg-options', *options],
               env={'PYTHONPATH': HERE})


def weights(path):
    return torch.load(path, map_location='cpu')['state_dict']


def kill_and_resume(config, tmp_path, options):
    """Train 4 epochs; train again, killed after epoch 2, then --resume.

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


def assert_same(want, got):
    assert want.keys() == got.keys()
    for key in want:
        assert torch.equal(want[key], got[key]), key


def test_kill_after_epoch_then_resume_matches_uninterrupted(
        tmp_path, tiny_image_folder):
    options = pretrain_overrides(tiny_image_folder, max_epochs=4)
    want, got, mid = kill_and_resume(MAE_DEMO, tmp_path, options)
    assert_same(want, got)
    # and training did move the weights between epoch 2 and 4
    assert any(not torch.equal(mid[k], want[k]) for k in want)


def test_sdae_resume_restores_the_ema_teacher_exactly(tmp_path,
                                                      tiny_image_folder):
    """The EMA teacher (and its update count) continue exactly after a
    kill: TeacherEMAHook updates it before the epoch checkpoint is saved."""
    options = pretrain_overrides(tiny_image_folder, max_epochs=4) + [
        'model.backbone.arch.num_layers=2', 'model.neck.decoder_depth=1']
    want, got, mid = kill_and_resume(SDAE_DEMO, tmp_path, options)
    assert_same(want, got)
    assert int(mid['teacher_updates']) == 2
    assert int(want['teacher_updates']) == 4
    teacher_keys = [key for key in want if key.startswith('teacher.')]
    assert teacher_keys
    # the teacher moved between epoch 2 and 4 (two EMA updates)
    assert any(not torch.equal(mid[key], want[key]) for key in teacher_keys
               if 'pos_embed' not in key)
