"""Resume after a kill reproduces the uninterrupted run exactly (CPU)."""
import os.path as osp

import torch

from .utils import MAE_DEMO, pretrain_overrides, python, run

HERE = osp.dirname(osp.abspath(__file__))


def train(config, work_dir, options, extra=()):
    return run([python(), 'tools/train.py', config, '--work-dir',
                str(work_dir), *extra, '--cfg-options', *options],
               env={'PYTHONPATH': HERE})


def weights(path):
    return torch.load(path, map_location='cpu')['state_dict']


def test_kill_after_epoch_then_resume_matches_uninterrupted(
        tmp_path, tiny_image_folder):
    options = pretrain_overrides(tiny_image_folder, max_epochs=4)
    full = train(MAE_DEMO, tmp_path / 'full', options)
    assert full.returncode == 0, full.stderr[-3000:]

    # Same config, plus a hook that kills the process after epoch 2.
    killed_cfg = tmp_path / 'killed.py'
    killed_cfg.write_text(
        f"_base_ = [{MAE_DEMO!r}]\n"
        "custom_imports = dict(imports=['mmmoma', 'exit_hook'], "
        "allow_failed_imports=False)\n"
        "custom_hooks = [dict(type='RNGStateHook'), "
        "dict(type='ExitAfterEpochHook', epoch=2)]\n")
    work = tmp_path / 'resumed'
    killed = train(str(killed_cfg), work, options)
    assert killed.returncode == 3, killed.stderr[-3000:]
    assert osp.exists(work / 'epoch_2.pth')
    assert not osp.exists(work / 'epoch_3.pth')

    resumed = train(MAE_DEMO, work, options, extra=['--resume'])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert 'resumed epoch: 2' in (resumed.stdout + resumed.stderr).lower() \
        or 'Load checkpoint from' in resumed.stdout + resumed.stderr

    want = weights(tmp_path / 'full' / 'epoch_4.pth')
    got = weights(work / 'epoch_4.pth')
    assert want.keys() == got.keys()
    for key in want:
        assert torch.equal(want[key], got[key]), key
    # and training did move the weights between epoch 2 and 4
    mid = weights(work / 'epoch_2.pth')
    assert any(not torch.equal(mid[k], want[k]) for k in want)
