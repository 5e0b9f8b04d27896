"""Our demo configs also train through mmpretrain's own tools/train.py."""
import os.path as osp

import mmpretrain
import pytest
import torch

from .utils import (MAE_DEMO, MOCOV3_DEMO, pretrain_overrides, python, run,
                    run_tool_in_process)

MMPRETRAIN_TRAIN = osp.join(
    osp.dirname(mmpretrain.__file__), '.mim', 'tools', 'train.py')


@pytest.mark.parametrize('config, as_command',
                         [(MAE_DEMO, True), (MOCOV3_DEMO, False)],
                         ids=['mae-command', 'mocov3-in-process'])
def test_demo_config_trains_with_mmpretrain_tool(config, as_command,
                                                 tmp_path,
                                                 tiny_image_folder):
    """The MAE config through the command, the MoCo v3 config through the
    same script's ``main`` in-process."""
    assert osp.exists(MMPRETRAIN_TRAIN)
    argv = [config, '--work-dir', str(tmp_path), '--cfg-options',
            *pretrain_overrides(tiny_image_folder, max_epochs=1)]
    if as_command:
        proc = run([python(), MMPRETRAIN_TRAIN, *argv])
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    else:
        run_tool_in_process(MMPRETRAIN_TRAIN, argv)
    ckpt = torch.load(tmp_path / 'epoch_1.pth', map_location='cpu')
    assert any(k.startswith('backbone.') for k in ckpt['state_dict'])
    assert ckpt['meta']['iter'] == 4  # 16 images / batch 4
