"""Every MOMA config trains for 2 iterations through tools/train.py.

Each config (configs/moma/*.py, configs/demo/moma-*.py) is loaded with
mmengine, shrunk (tiny ViTs for the student and every teacher, 32 px images,
a tiny image folder, random stand-in checkpoints, plain ``OptimWrapper``
instead of CUDA-only AMP), dumped, and trained by the real tools/train.py in
a subprocess. Only sizes, paths and the data source are rewritten: the
algorithm, its teachers, view pairing, pipeline transforms and schedule are
the config's own.
"""
import glob
import os
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmpretrain.registry import MODELS

from ..test_tools.utils import REPO_ROOT, python, run

MOMA_CONFIGS = sorted(
    glob.glob(osp.join(REPO_ROOT, 'configs', 'moma', '*.py')) +
    glob.glob(osp.join(REPO_ROOT, 'configs', 'demo', 'moma-*.py')))
SHRUNK_ARCH = dict(
    embed_dims=64, num_layers=2, num_heads=4, feedforward_channels=128)
BATCH_SIZE = 8  # the tiny folder's 16 training images: 2 iterations / epoch


def test_moma_configs_found():
    names = [osp.basename(path) for path in MOMA_CONFIGS]
    assert sum(path.startswith('moma') for path in names) == 9, names


PAPER_CONFIGS = sorted(glob.glob(osp.join(REPO_ROOT, 'configs', 'moma',
                                          '*.py')))


@pytest.mark.parametrize(
    'config', PAPER_CONFIGS, ids=[osp.basename(p) for p in PAPER_CONFIGS])
def test_paper_lr_is_the_base_lr_scaled_to_batch_4096(config):
    # §4.1: lr 1.5e-4 "following MoCo v3 and MAE", whose 1.5e-4 is a base
    # lr x batch / 256; batch 4096 (§4.1 "Batch Size") -> 2.4e-3
    cfg = Config.fromfile(config)
    batch = 8 * cfg.train_dataloader.batch_size
    assert batch == cfg.auto_scale_lr.base_batch_size == 4096
    assert cfg.optim_wrapper.optimizer.lr == pytest.approx(
        1.5e-4 * batch / 256)
    assert cfg.optim_wrapper.optimizer.lr == pytest.approx(2.4e-3)


def test_table3_base_to_small_is_mae_vit_b_to_mocov3_vit_s():
    cfg = Config.fromfile(osp.join(
        REPO_ROOT, 'configs', 'moma',
        'moma-mae-to-mocov3_vit-small-p16_8xb512-amp-coslr-100e_in1k.py'))
    (name, spec), = cfg.model.teachers.items()
    assert name == 'mae' and spec.teacher.network.arch == 'b'
    assert spec.teacher.checkpoint.endswith('mae_pretrain_vit_base_'
                                            'mmpretrain.pth')
    assert cfg.model.backbone.arch == dict(
        embed_dims=384, num_layers=12, num_heads=12,
        feedforward_channels=1536)
    assert 'mocov3_vit-small' in cfg.model.backbone.init_cfg.checkpoint
    assert cfg.model.mask_ratio == 0.9  # Table 3: 90 % for all entries
    assert spec.student_view == 0  # original view (MAE teacher, §3.3)


@pytest.fixture(scope='module')
def stand_in_checkpoint(tmp_path_factory):
    """A random shrunk ViT saved as a training checkpoint (backbone.*)."""
    torch.manual_seed(0)
    network = MODELS.build(
        dict(
            type='MaskedViT',
            arch=SHRUNK_ARCH,
            img_size=32,
            patch_size=4,
            out_type='raw'))
    path = str(tmp_path_factory.mktemp('stand_in') / 'vit.pth')
    torch.save(
        {
            'state_dict': {
                f'backbone.{key}': value
                for key, value in network.state_dict().items()
            }
        }, path)
    return path


def shrink_vit(network: dict) -> None:
    network['arch'] = dict(SHRUNK_ARCH)
    network['img_size'] = 32
    network['patch_size'] = 4


def shrunk_config(path: str, data_root: str, checkpoint: str,
                  work_dir: str) -> Config:
    cfg = Config.fromfile(path)
    model = cfg.model
    assert model.type == 'MOMA'
    shrink_vit(model.backbone)
    init_cfg = model.backbone.get('init_cfg')
    if init_cfg is not None:
        assert init_cfg.type == 'StrictPretrained'
        init_cfg.checkpoint = checkpoint
    for spec in model.teachers.values():
        shrink_vit(spec.teacher.network)
        spec.teacher.checkpoint = checkpoint
    if cfg.optim_wrapper.type == 'AmpOptimWrapper':  # CUDA only
        cfg.optim_wrapper.type = 'OptimWrapper'
    loader = cfg.train_dataloader
    loader.update(batch_size=BATCH_SIZE, num_workers=0,
                  persistent_workers=False)
    loader.pop('pin_memory', None)
    pipeline = loader.dataset.pipeline
    crops = [t for t in pipeline if t.type == 'RandomResizedCrop']
    assert len(crops) == 1, 'the views must share one crop'
    crops[0].scale = 32
    loader.dataset = dict(
        type='CustomDataset',
        data_root=data_root,
        data_prefix='train',
        pipeline=pipeline)
    cfg.train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=1)
    cfg.default_hooks.checkpoint = dict(
        type='CheckpointHook', interval=1, max_keep_ckpts=1)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=1)
    cfg.work_dir = work_dir
    return cfg


@pytest.mark.parametrize(
    'config', MOMA_CONFIGS, ids=[osp.basename(p) for p in MOMA_CONFIGS])
def test_config_trains_two_iterations(config, tiny_image_folder,
                                      stand_in_checkpoint, tmp_path):
    work_dir = str(tmp_path / 'work')
    cfg = shrunk_config(config, tiny_image_folder, stand_in_checkpoint,
                        work_dir)
    shrunk_path = str(tmp_path / osp.basename(config))
    cfg.dump(shrunk_path)

    proc = run([python(), 'tools/train.py', shrunk_path, '--work-dir',
                work_dir],
               env={'OMP_NUM_THREADS': '1'},
               timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    log = proc.stdout + proc.stderr
    assert 'FrozenTeacher: loaded' in log
    assert log.count('Epoch(train)') == 2  # logger interval 1
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        checkpoint = torch.load(f.read().strip(), map_location='cpu')
    assert checkpoint['meta']['iter'] == 2
    state_dict = checkpoint['state_dict']
    assert not any(key.startswith('teachers.') for key in state_dict)
    for name in cfg.model.teachers:
        assert f'projectors.{name}.' in ' '.join(state_dict)
    if cfg.model.backbone.get('init_cfg') is not None:
        assert 'StrictPretrained: loaded' in log
    os.remove(shrunk_path)
