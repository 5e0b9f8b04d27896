"""Our demo configs also train through mmpretrain's own tools/train.py."""
import os.path as osp

import mmpretrain
import pytest
import torch

from .utils import MAE_DEMO, MOCOV3_DEMO, pretrain_overrides, python, run

MMPRETRAIN_TRAIN = osp.join(
    osp.dirname(mmpretrain.__file__), '.mim', 'tools', 'train.py')


@pytest.mark.parametrize('config', [MAE_DEMO, MOCOV3_DEMO])
def test_demo_config_trains_with_mmpretrain_tool(config, tmp_path,
                                                 tiny_image_folder):
    assert osp.exists(MMPRETRAIN_TRAIN)
    proc = run([python(), MMPRETRAIN_TRAIN, config, '--work-dir',
                str(tmp_path), '--cfg-options',
                *pretrain_overrides(tiny_image_folder, max_epochs=1)])
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    ckpt = torch.load(tmp_path / 'epoch_1.pth', map_location='cpu')
    assert any(k.startswith('backbone.') for k in ckpt['state_dict'])
    assert ckpt['meta']['iter'] == 4  # 16 images / batch 4
