"""Every MOMA config trains for 2 iterations, as tools/train.py trains it.

Each config (configs/moma/*.py, configs/demo/moma-*.py) is loaded with
mmengine, shrunk (:func:`~mmmoma.utils.model_shrinking.shrink_model`: tiny
ViTs for the student and every teacher, 32 px images; random stand-in
checkpoints of that arch for every teacher and StrictPretrained init, from
:func:`~mmmoma.utils.stand_in_checkpoints.write_stand_in_checkpoints`; a
tiny image folder; plain ``OptimWrapper`` instead of CUDA-only AMP) and
trained in the pytest process through tools/train.py's own config merging
(``train_in_process``). Only sizes, paths and the data source are
rewritten: the algorithm, its teachers, view pairing, pipeline transforms
and schedule are the config's own.
"""
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from mmmoma.utils.stand_in_checkpoints import write_stand_in_checkpoints

from ..test_tools.utils import REPO_ROOT
from .pretrain_stand_in import BATCH_SIZE, method_configs, shrunk_config

MOMA_CONFIGS = method_configs('moma', 'moma-*.py')


def test_moma_configs_found():
    names = [osp.basename(path) for path in MOMA_CONFIGS]
    # 9 paper / demo configs + 2 mixes (configs/mix)
    assert sum(path.startswith('moma') for path in names) == 11, names


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


def moma_config(path: str, data_root: str, checkpoint_dir: str) -> Config:
    cfg = shrunk_config(path, 'RandomResizedCrop')
    assert cfg.model.type == 'MOMA'
    init_cfg = cfg.model.backbone.get('init_cfg')
    assert init_cfg is None or init_cfg.type == 'StrictPretrained'
    cfg.model, stand_ins = write_stand_in_checkpoints(cfg.model,
                                                      checkpoint_dir)
    # one file per teacher, and one for the student's init
    assert len(stand_ins) == len(cfg.model.teachers) + (init_cfg is not None)
    loader = cfg.train_dataloader
    loader.update(batch_size=BATCH_SIZE, num_workers=0,
                  persistent_workers=False)
    loader.pop('pin_memory', None)
    loader.dataset = dict(
        type='CustomDataset',
        data_root=data_root,
        data_prefix='train',
        pipeline=loader.dataset.pipeline)
    cfg.train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=1)
    cfg.default_hooks.checkpoint = dict(
        type='CheckpointHook', interval=1, max_keep_ckpts=1)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=1)
    return cfg


@pytest.mark.parametrize(
    'config', MOMA_CONFIGS, ids=[osp.basename(p) for p in MOMA_CONFIGS])
def test_config_trains_two_iterations(config, tiny_image_folder, tmp_path,
                                      train_in_process):
    cfg = moma_config(config, tiny_image_folder, str(tmp_path / 'stand_in'))
    run = train_in_process(cfg)
    log = run.log
    assert 'FrozenTeacher: loaded' in log, log[-4000:]
    assert log.count('Epoch(train)') == 2  # logger interval 1
    checkpoint = torch.load(run.last_checkpoint, map_location='cpu')
    assert checkpoint['meta']['iter'] == 2
    state_dict = checkpoint['state_dict']
    assert not any(key.startswith('teachers.') for key in state_dict)
    for name in cfg.model.teachers:
        assert f'projectors.{name}.' in ' '.join(state_dict)
    if cfg.model.backbone.get('init_cfg') is not None:
        assert 'StrictPretrained: loaded' in log
