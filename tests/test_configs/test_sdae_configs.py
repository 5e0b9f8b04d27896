"""Every SdAE config trains for 2 iterations through tools/train.py.

Each config (configs/sdae/*.py, configs/demo/sdae_*.py) is run by the real
tools/train.py in a subprocess, shrunk only through ``--cfg-options``: a tiny
ViT (the teacher is built from the same config), 32 px images, a tiny
decoder, a 16-image stand-in dataset in the config's own dataset type, one
epoch of 2 iterations. The algorithm, its teacher input, the pipeline and
the schedule are the config's own. AMP configs fall back to fp32 on the CPU
(``mmmoma.compat.amp_to_fp32_without_gpu``).
"""
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from ..test_tools.utils import REPO_ROOT, python, run

SDAE_CONFIGS = sorted(
    glob.glob(osp.join(REPO_ROOT, 'configs', 'sdae', '*.py')) +
    glob.glob(osp.join(REPO_ROOT, 'configs', 'demo', 'sdae_*.py')))
SHRUNK_ARCH = dict(
    embed_dims=64, num_layers=2, num_heads=4, feedforward_channels=128)
BATCH_SIZE = 8  # the stand-in's 16 training images: 2 iterations / epoch


def test_sdae_configs_found():
    names = [osp.basename(path) for path in SDAE_CONFIGS]
    assert len(names) == 7, names


def shrink_options(cfg: Config, data_root: str) -> list:
    """--cfg-options that shrink a SdAE config to a CPU smoke test."""
    options = [
        'model.backbone.arch._delete_=True',
        *[f'model.backbone.arch.{key}={value}'
          for key, value in SHRUNK_ARCH.items()],
        'model.backbone.img_size=32', 'model.backbone.patch_size=4',
        'model.neck.num_patches=64', 'model.neck.patch_size=4',
        'model.neck.decoder_embed_dim=32', 'model.neck.decoder_depth=1',
        'model.neck.decoder_num_heads=4',
        f'train_dataloader.dataset.data_root={data_root}',
        f'train_dataloader.batch_size={BATCH_SIZE}',
        'train_dataloader.num_workers=0',
        'train_cfg.max_epochs=1',
        'default_hooks.checkpoint.interval=1',
        'default_hooks.logger.interval=1',
    ]
    if cfg.train_dataloader.dataset.type == 'CustomDataset':
        options.append('train_dataloader.dataset.data_prefix=train')
    pipeline = cfg.train_dataloader.dataset.pipeline
    crops = [index for index, transform in enumerate(pipeline)
             if transform.type == 'RandomResizedCrop']
    assert len(crops) == 1, 'teacher and student share one crop'
    options.append(f'train_dataloader.dataset.pipeline.{crops[0]}.scale=32')
    return options


@pytest.mark.parametrize(
    'config', SDAE_CONFIGS, ids=[osp.basename(p) for p in SDAE_CONFIGS])
def test_config_trains_two_iterations(config, imagenet_stand_in,
                                      tiny_image_folder, tmp_path):
    cfg = Config.fromfile(config)
    assert cfg.model.type == 'SdAE'
    assert 'TeacherEMAHook' in [hook.type for hook in cfg.custom_hooks]
    data_root = (tiny_image_folder if cfg.train_dataloader.dataset.type ==
                 'CustomDataset' else imagenet_stand_in)
    work_dir = str(tmp_path / 'work')
    proc = run([python(), 'tools/train.py', config, '--work-dir', work_dir,
                '--cfg-options', *shrink_options(cfg, data_root)],
               env={'OMP_NUM_THREADS': '1'},
               timeout=300)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    assert log.count('Epoch(train)') == 2  # logger interval 1
    if cfg.optim_wrapper.type == 'AmpOptimWrapper':
        assert 'replaced by OptimWrapper (fp32)' in log

    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        checkpoint = torch.load(f.read().strip(), map_location='cpu')
    assert checkpoint['meta']['iter'] == 2
    state_dict = checkpoint['state_dict']
    # the per-epoch EMA update ran once, before the checkpoint was saved
    assert int(state_dict['teacher_updates']) == 1
    assert state_dict['backbone.pos_embed'].shape == (1, 65, 64)
    assert state_dict['neck.decoder_pred.weight'].shape == (64, 32)
    teacher_keys = {k[len('teacher.'):] for k in state_dict
                    if k.startswith('teacher.')}
    student_keys = {k[len('backbone.'):] for k in state_dict
                    if k.startswith('backbone.')}
    assert teacher_keys == student_keys
