"""Every M-MoCo / M-BYOL config trains for 2 iterations through
tools/train.py.

Each config (configs/mmoco/*.py, configs/demo/mmoco*.py) is run by the real
tools/train.py in a subprocess, shrunk only through ``--cfg-options``: a tiny
ViT (64 wide, 2 blocks, 4 px patches: 64 patches, so n = 8 chunks of 8),
32 px views, narrow heads, a 16-image stand-in in the config's own dataset
type, one epoch of 2 iterations of 8 images, the vMF monitor every
iteration. The algorithm, its chunking, heads, augmentation mode, hooks and
schedule are the config's own. AMP configs fall back to fp32 on the CPU.

The paper's hyper-parameters (M-MoCo §3.1, §4.1–4.2, Table 8) are checked
on the configs as written, before any shrinking.
"""
import glob
import os.path as osp
import re

import pytest
import torch
from mmengine.config import Config

from ..test_tools.utils import REPO_ROOT, python, run

MMOCO_CONFIGS = sorted(
    glob.glob(osp.join(REPO_ROOT, 'configs', 'mmoco', '*.py')) +
    glob.glob(osp.join(REPO_ROOT, 'configs', 'demo', 'mmoco*.py')))
PAPER_CONFIGS = [path for path in MMOCO_CONFIGS
                 if osp.basename(osp.dirname(path)) == 'mmoco']
VIT_ARCH = dict(
    embed_dims=64, num_layers=2, num_heads=4, feedforward_channels=128)
BATCH_SIZE = 8  # the stand-in's 16 training images: 2 iterations / epoch
ITERS = 2
HIDDEN, OUT = 32, 16  # head widths
VIT_SMALL = dict(
    embed_dims=384, num_layers=12, num_heads=12, feedforward_channels=1536)


def test_mmoco_configs_found():
    assert len(PAPER_CONFIGS) == 8, PAPER_CONFIGS
    assert len(MMOCO_CONFIGS) == 10


def hook_index(cfg: Config, hook_type: str) -> int:
    types = [hook.type for hook in cfg.custom_hooks]
    return types.index(hook_type)


def shrink_options(cfg: Config, data_root: str) -> list:
    """--cfg-options that shrink an M-MoCo config to a CPU smoke test."""
    options = ['model.backbone.arch._delete_=True']
    options += [f'model.backbone.arch.{key}={value}'
                for key, value in VIT_ARCH.items()]
    options += [
        'model.backbone.img_size=32', 'model.backbone.patch_size=4',
        f'model.neck.hid_channels={HIDDEN}',
        f'model.neck.out_channels={OUT}',
        f'model.predictor.hid_channels={HIDDEN}',
        f'train_dataloader.dataset.data_root={data_root}',
        f'train_dataloader.batch_size={BATCH_SIZE}',
        'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False',
        'train_cfg.max_epochs=1',
        'default_hooks.checkpoint.interval=1',
        'default_hooks.logger.interval=1',
    ]
    if cfg.model.get('cross_attention'):
        options.append('model.cross_attention.num_heads=4')
    if cfg.train_dataloader.dataset.type == 'CustomDataset':
        options.append('train_dataloader.dataset.data_prefix=train')
    views = [index for index, transform in enumerate(
        cfg.train_dataloader.dataset.pipeline)
        if transform.type == 'ContrastiveViews']
    assert len(views) == 1
    options.append(f'train_dataloader.dataset.pipeline.{views[0]}.'
                   'crop_size=32')
    if 'ConcentrationMonitorHook' in [h.type for h in cfg.custom_hooks]:
        index = hook_index(cfg, 'ConcentrationMonitorHook')
        options.append(f'custom_hooks.{index}.interval=1')
    return options


def paper_setting(config: str):
    """(epochs, warm-up epochs, total batch, dataset) from the name."""
    match = re.search(r'_8xb(\d+)-amp-coslr-(\d+)e_(in1k|in100)\.py$',
                      config)
    assert match, config
    per_gpu, epochs, data = int(match.group(1)), int(match.group(2)), \
        match.group(3)
    warmup = {300: 20, 800: 40, 200: 20}[epochs]
    return epochs, warmup, 8 * per_gpu, data


@pytest.mark.parametrize(
    'config', PAPER_CONFIGS, ids=[osp.basename(p) for p in PAPER_CONFIGS])
def test_config_has_the_paper_hyper_parameters(config):
    """M-MoCo §3.1, §3.4, §4.1-4.2 and Table 8 as written in the config."""
    cfg = Config.fromfile(config)
    name = osp.basename(config)
    model = cfg.model
    algorithm = name.split('_')[0]
    byol = algorithm.startswith('mbyol')
    assert model.type == ('MaskedBYOL' if byol else 'MaskedMoCoV3')
    assert model.get('temperature', 0.2) == 0.2
    # n = 8 online chunks, full target view, no frozen patch embedding
    assert model.num_chunks == 8 and model.num_target_chunks == 1
    assert model.backbone.type == 'MaskedMoCoV3ViT'
    assert model.backbone.stop_grad_conv1 is False
    assert model.backbone.patch_size == 16 and model.backbone.img_size == 224
    assert (model.base_momentum, model.end_momentum) == (0.99, 1.0)
    # heads: MoCo v3's widths and depths, LayerNorm unless the BN ablation
    norm = 'SyncBN' if algorithm == 'mmoco-bn-heads' else 'LN'
    assert model.neck.type == model.predictor.type == 'NormMLP'
    assert (model.neck.num_layers, model.predictor.num_layers) == (3, 2)
    assert model.neck.hid_channels == model.predictor.hid_channels == 4096
    assert model.neck.out_channels == 256
    assert model.neck.norm_cfg.type == model.predictor.norm_cfg.type == norm
    assert model.predictor.get('with_last_norm', True) is (not byol)
    if algorithm == 'mmoco-ln-ca':
        assert model.cross_attention.type == 'ClassAttentionBlocks'
        assert model.cross_attention.num_blocks == 2
    else:
        assert model.get('cross_attention') is None
    # data: light augmentation, the named dataset and batch
    epochs, warmup, batch, data = paper_setting(config)
    loader = cfg.train_dataloader
    assert loader.batch_size * 8 == batch
    assert [t.type for t in loader.dataset.pipeline] == [
        'LoadImageFromFile', 'ContrastiveViews', 'PackInputs']
    views = loader.dataset.pipeline[1]
    assert views.mode == 'light' and views.crop_size == 224
    if data == 'in1k':
        assert loader.dataset.type == 'ImageNet'
        assert model.backbone.arch == 'base' and batch == 4096
    else:
        assert loader.dataset.type == 'CustomDataset'
        assert 'imagenet100' in loader.dataset.data_root
        assert model.backbone.arch == VIT_SMALL and batch == 1024
        assert epochs == 200
    # schedule: AdamW (0.9, 0.95), lr 1.5e-4 x batch / 256, wd 0.1
    optimizer = cfg.optim_wrapper.optimizer
    assert optimizer.type == 'AdamW'
    assert tuple(optimizer.betas) == (0.9, 0.95)
    assert optimizer.lr == pytest.approx(1.5e-4 * batch / 256)
    assert optimizer.weight_decay == 0.1
    assert cfg.auto_scale_lr.base_batch_size == batch
    assert cfg.train_cfg.max_epochs == epochs
    warmup_scheduler, cosine = cfg.param_scheduler
    assert (warmup_scheduler.begin, warmup_scheduler.end) == (0, warmup)
    assert (cosine.begin, cosine.end, cosine.T_max) == (warmup, epochs,
                                                        epochs - warmup)
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'  # name says amp
    hooks = [hook.type for hook in cfg.custom_hooks]
    assert hooks == ['RNGStateHook', 'TeacherEMAHook',
                     'ConcentrationMonitorHook']


@pytest.mark.parametrize(
    'config', MMOCO_CONFIGS, ids=[osp.basename(p) for p in MMOCO_CONFIGS])
def test_config_trains_two_iterations(config, imagenet_stand_in,
                                      tiny_image_folder, tmp_path):
    cfg = Config.fromfile(config)
    assert cfg.model.type in ('MaskedMoCoV3', 'MaskedBYOL')
    hooks = [hook.type for hook in cfg.custom_hooks]
    assert 'TeacherEMAHook' in hooks
    data_root = (tiny_image_folder if cfg.train_dataloader.dataset.type ==
                 'CustomDataset' else imagenet_stand_in)
    options = shrink_options(cfg, data_root)
    work_dir = str(tmp_path / 'work')
    proc = run([python(), 'tools/train.py', config, '--work-dir', work_dir,
                '--cfg-options', *options],
               env={'OMP_NUM_THREADS': '1'},
               timeout=300)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    iter_lines = [line for line in log.splitlines()
                  if 'Epoch(train)' in line]
    assert len(iter_lines) == ITERS, iter_lines  # logger interval 1
    monitored = 'ConcentrationMonitorHook' in hooks
    for line in iter_lines:
        loss = float(re.search(r'\bloss: ([-\d.e+]+)', line).group(1))
        assert torch.isfinite(torch.tensor(loss))
        assert 'teacher_momentum: 0.99' in line
        kappas = set(re.findall(r'\bkappa_(\w+): ', line))
        assert kappas == ({'rep', 'projector', 'predictor'}
                          if monitored else set()), line
    if cfg.optim_wrapper.type == 'AmpOptimWrapper':
        assert 'replaced by OptimWrapper (fp32)' in log

    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        checkpoint = torch.load(f.read().strip(), map_location='cpu')
    assert checkpoint['meta']['iter'] == ITERS
    state_dict = checkpoint['state_dict']
    assert state_dict['backbone.pos_embed'].shape == (1, 65, 64)
    assert state_dict['neck.fc2.weight'].shape == (OUT, HIDDEN)
    # the momentum encoder mirrors every online part, and after 2 EMA
    # steps (m ~ 0.99) it trails the optimised weights slightly
    parts = {'backbone', 'neck'}
    if cfg.model.get('cross_attention'):
        parts.add('cross_attention')
    momentum = {key[len('momentum_encoder.'):]: value
                for key, value in state_dict.items()
                if key.startswith('momentum_encoder.')}
    assert {key.split('.')[0] for key in momentum} == parts
    for key, value in momentum.items():
        online = state_dict[key]
        assert online.shape == value.shape, key
        if key.endswith('qkv.weight') or key.startswith('neck.fc'):
            assert not torch.equal(online, value), key
            assert (online - value).norm() < 0.1 * online.norm(), key
