"""tools/dist_train.sh CONFIG 2 runs two (CPU, gloo) processes to the end."""
import os.path as osp
import socket

import torch

from .utils import MAE_DEMO, pretrain_overrides, python, run


def free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def test_dist_train_two_processes(tmp_path, tiny_image_folder):
    work = tmp_path / 'dist'
    proc = run(['bash', 'tools/dist_train.sh', MAE_DEMO, '2', '--work-dir',
                str(work), '--cfg-options',
                *pretrain_overrides(tiny_image_folder, max_epochs=2)],
               env={'PYTHON': python(), 'PORT': str(free_port())})
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    assert 'Distributed training: True' in log and 'GPU number: 2' in log
    ckpt = torch.load(work / 'epoch_2.pth', map_location='cpu')
    # 16 train images / (2 processes x batch 4) = 2 iterations per epoch
    assert ckpt['meta']['iter'] == 4
    # RNGStateHook gathered both ranks' states; ranks are seeded apart
    states = ckpt['rng_state']
    assert len(states) == 2
    assert not torch.equal(states[0]['torch'], states[1]['torch'])
    assert osp.exists(work / 'last_checkpoint')
