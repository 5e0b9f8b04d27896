"""Every M-MoCo / M-BYOL config trains for 2 iterations, as tools/train.py
trains it.

Each config (configs/mmoco/*.py, configs/demo/mmoco*.py) is shrunk by
:func:`~mmmoma.utils.model_shrinking.shrink_model` (a tiny ViT, 64 wide, 2
blocks, 4 px patches: 64 patches, so n = 8 chunks of 8; 32-wide hidden
layers in the heads), with 32 px views, a 16-image stand-in in the config's
own dataset type, one epoch of 2 iterations of 8 images, the vMF monitor
every iteration, and trained in the pytest process through tools/train.py's
own config merging (``train_in_process``). The algorithm, its chunking,
heads, augmentation mode, hooks and schedule are the config's own. AMP
configs fall back to fp32 on the CPU.

The paper's hyper-parameters (M-MoCo §3.1, §4.1–4.2, Table 8) are checked
on the configs as written, before any shrinking, against what each config's
name says ({algo}[-bn][-ca][-{strong,medium}-aug][-nN][-mM]_{arch}_8xb{B}-
amp-coslr-{E}e_{data}); that the names cover the rows of the paper's tables
is checked as well. (That each config equals its paper row's record:
configs/mmoco/metafile.yml, tests/test_configs/test_metafiles.py.)
"""
import os.path as osp
import re
from typing import NamedTuple

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner
from mmpretrain.registry import MODELS

from ..test_tools.utils import REPO_ROOT
from .pretrain_stand_in import (ITERS, data_options, method_configs,
                                shrunk_config)

MMOCO_CONFIGS = method_configs('mmoco', 'mmoco*.py')
PAPER_CONFIGS = [path for path in MMOCO_CONFIGS
                 if osp.basename(osp.dirname(path)) == 'mmoco']
HIDDEN = 32  # hidden width of the heads (their outputs keep theirs)
VIT_SMALL = dict(
    embed_dims=384, num_layers=12, num_heads=12, feedforward_channels=1536)


#: the paper's ImageNet-100 / ImageNet-1k rows, one config each
NUM_PAPER_CONFIGS = 33
#: warm-up epochs: (data, epochs) -> warm-up. Table 8 gives 20 (300 ep) and
#: 40 (800 ep) on ImageNet-1k; the others are our choices (the configs say
#: which and why).
WARMUP = {('in100', 200): 20, ('in100', 800): 40, ('in1k', 60): 10,
          ('in1k', 100): 10, ('in1k', 300): 20, ('in1k', 800): 40}
NAME = re.compile(
    r'^(?P<algo>mmoco|mbyol|mocov3|byol)(?P<bn>-bn)?(?P<ca>-ca)?'
    r'(?:-(?P<aug>strong|medium)-aug)?(?:-n(?P<n>\d+))?(?:-m(?P<m>\d+))?'
    r'_vit-(?P<arch>small|base)-p16_8xb(?P<per_gpu>\d+)-amp-coslr-'
    r'(?P<epochs>\d+)e_(?P<data>in1k|in100)\.py$')


class Recipe(NamedTuple):
    """What a config's name says about it."""
    byol: bool  # MaskedBYOL (else MaskedMoCoV3)
    baseline: bool  # MoCo v3 / BYOL: n = m = 1, frozen patch embedding
    num_chunks: int
    num_target_chunks: int
    norm: str  # of both heads
    cross_attention: bool
    augmentation: str  # ContrastiveViews.mode
    arch: object
    batch: int
    epochs: int
    data: str


def recipe(config: str) -> Recipe:
    match = NAME.match(osp.basename(config))
    assert match, f'{osp.basename(config)}: not a paper-config name'
    algo = match['algo']
    baseline = algo in ('mocov3', 'byol')
    assert not (baseline and (match['bn'] or match['aug'] or match['n']
                              or match['m'])), 'a baseline takes no variant'
    return Recipe(
        byol=algo in ('mbyol', 'byol'),
        baseline=baseline,
        num_chunks=int(match['n'] or (1 if baseline else 8)),
        num_target_chunks=int(match['m'] or 1),
        # MoCo v3 / BYOL come with their BN heads and strong augmentation
        norm='SyncBN' if match['bn'] or baseline else 'LN',
        cross_attention=bool(match['ca']),
        augmentation=match['aug'] or ('strong' if baseline else 'light'),
        arch=VIT_SMALL if match['arch'] == 'small' else 'base',
        batch=8 * int(match['per_gpu']),
        epochs=int(match['epochs']),
        data=match['data'])


def test_mmoco_configs_found():
    assert len(PAPER_CONFIGS) == NUM_PAPER_CONFIGS, PAPER_CONFIGS
    # + the two demos and the mix (configs/mix)
    assert len(MMOCO_CONFIGS) == NUM_PAPER_CONFIGS + 3


def test_the_names_cover_the_rows_of_tables_1_to_5():
    """Tables 1-2 (and Fig. 4's two stated points) on ImageNet-100 with BN
    heads and strong augmentation, 200 epochs: for MoCo and BYOL each the
    baseline (frozen PE), n = 1, 2, 4, 6, 8, 10 at m = 1 and m = 2, 4, 8 at
    n = 1; Table 3 (BN / LN / LN + CA, 800 epochs); Table 4 (three
    augmentations, ViT-S 100 / ViT-B 60 epochs); Table 5 (300 / 800)."""
    rows = {}
    for config in PAPER_CONFIGS:
        r = recipe(config)
        rows.setdefault((r.data, r.epochs, r.arch == 'base'), set()).add(
            (r.byol, r.baseline, r.num_chunks, r.num_target_chunks, r.norm,
             r.cross_attention, r.augmentation))
    ablations = set()
    for byol in (False, True):
        ablations.add((byol, True, 1, 1, 'SyncBN', False, 'strong'))
        ablations |= {(byol, False, n, 1, 'SyncBN', False, 'strong')
                      for n in (1, 2, 4, 6, 8, 10)}
        ablations |= {(byol, False, 1, m, 'SyncBN', False, 'strong')
                      for m in (2, 4, 8)}
    ablations |= {(True, False, n, 8, 'SyncBN', False, 'strong')
                  for n in (4, 8)}  # Fig. 4b
    table_4 = {(False, False, 8, 1, 'LN', False, aug)
               for aug in ('strong', 'medium', 'light')}
    assert rows == {
        ('in100', 200, False): ablations,
        ('in100', 800, False): {
            (False, False, 8, 1, 'SyncBN', False, 'strong'),
            (False, False, 8, 1, 'LN', False, 'strong'),
            (False, False, 8, 1, 'LN', True, 'strong')},
        ('in1k', 100, False): table_4,
        ('in1k', 60, True): table_4,
        ('in1k', 300, True): {(False, False, 8, 1, 'LN', False, 'light')},
        ('in1k', 800, True): {(False, False, 8, 1, 'LN', False, 'light')},
    }


def hook_index(cfg: Config, hook_type: str) -> int:
    types = [hook.type for hook in cfg.custom_hooks]
    return types.index(hook_type)


def run_options(cfg: Config, image_folder: str, imagenet: str) -> list:
    """data_options, and the vMF monitor at every iteration."""
    extra = ['train_dataloader.persistent_workers=False']
    if 'ConcentrationMonitorHook' in [h.type for h in cfg.custom_hooks]:
        index = hook_index(cfg, 'ConcentrationMonitorHook')
        extra.append(f'custom_hooks.{index}.interval=1')
    return data_options(cfg, image_folder, imagenet, extra)


@pytest.mark.parametrize(
    'config', PAPER_CONFIGS, ids=[osp.basename(p) for p in PAPER_CONFIGS])
def test_config_has_the_paper_hyper_parameters(config):
    """M-MoCo §3.1, §3.4, §4.1-4.2 and Table 8 as written in the config,
    and what its name says."""
    cfg = Config.fromfile(config)
    expected = recipe(config)
    model = cfg.model
    assert model.type == ('MaskedBYOL' if expected.byol else 'MaskedMoCoV3')
    assert model.get('temperature', 0.2) == 0.2
    assert model.num_chunks == expected.num_chunks
    assert model.num_target_chunks == expected.num_target_chunks
    assert model.backbone.type == 'MaskedMoCoV3ViT'
    # MoCo v3's frozen patch embedding only for the MoCo v3 / BYOL rows
    assert model.backbone.stop_grad_conv1 is expected.baseline
    assert model.backbone.patch_size == 16 and model.backbone.img_size == 224
    assert model.backbone.arch == expected.arch
    assert (model.base_momentum, model.end_momentum) == (0.99, 1.0)
    # heads: MoCo v3's widths and depths; BN (SyncBN) or LN
    assert model.neck.type == model.predictor.type == 'NormMLP'
    assert (model.neck.num_layers, model.predictor.num_layers) == (3, 2)
    assert model.neck.hid_channels == model.predictor.hid_channels == 4096
    assert model.neck.out_channels == 256
    assert model.neck.norm_cfg.type == expected.norm
    assert model.predictor.norm_cfg.type == expected.norm
    # §3.1: BYOL's predictor without the output BN
    assert model.predictor.get('with_last_norm', True) is (not expected.byol)
    if expected.cross_attention:
        assert model.cross_attention.type == 'ClassAttentionBlocks'
        assert model.cross_attention.num_blocks == 2
        assert model.cross_attention.num_heads == 12
    else:
        assert model.get('cross_attention') is None
    # data: the named augmentation, dataset and batch; full batches only
    loader = cfg.train_dataloader
    assert loader.batch_size * 8 == expected.batch
    assert loader.drop_last is True  # MoCo v3's main_moco.py
    assert [t.type for t in loader.dataset.pipeline] == [
        'LoadImageFromFile', 'ContrastiveViews', 'PackInputs']
    views = loader.dataset.pipeline[1]
    assert views.mode == expected.augmentation and views.crop_size == 224
    assert views.get('max_shift', 32) == 32  # §4.1 medium: 0-32 pixels
    assert views.get('crop_scale', (0.08, 1.0)) == (0.08, 1.0)
    assert views.get('view_pipelines') is None  # MoCo v3's colour etc.
    if expected.data == 'in1k':
        assert loader.dataset.type == 'ImageNet'
        assert expected.batch == 4096  # §4.2
    else:
        assert loader.dataset.type == 'CustomDataset'
        assert 'imagenet100' in loader.dataset.data_root
        assert expected.arch == VIT_SMALL and expected.batch == 1024
    # schedule: AdamW (0.9, 0.95), lr 1.5e-4 x batch / 256, wd 0.1
    optimizer = cfg.optim_wrapper.optimizer
    assert optimizer.type == 'AdamW'
    assert tuple(optimizer.betas) == (0.9, 0.95)
    assert optimizer.lr == pytest.approx(1.5e-4 * expected.batch / 256)
    assert optimizer.weight_decay == 0.1
    assert cfg.auto_scale_lr.base_batch_size == expected.batch
    epochs = expected.epochs
    warmup = WARMUP[expected.data, epochs]
    assert cfg.train_cfg.max_epochs == epochs
    warmup_scheduler, cosine = cfg.param_scheduler
    assert warmup_scheduler.type == 'LinearLR'
    assert (warmup_scheduler.begin, warmup_scheduler.end) == (0, warmup)
    assert cosine.type == 'CosineAnnealingLR'
    assert (cosine.begin, cosine.end, cosine.T_max) == (warmup, epochs,
                                                        epochs - warmup)
    # name says amp: bf16 on GPUs that have it, fused AdamW
    assert (cfg.optim_wrapper.type, cfg.optim_wrapper.dtype) == (
        'AutoAmpOptimWrapper', 'bfloat16')
    assert cfg.optim_wrapper.optimizer.fused is True
    hooks = [hook.type for hook in cfg.custom_hooks]
    assert hooks == ['RNGStateHook', 'TeacherEMAHook',
                     'ConcentrationMonitorHook']


@pytest.mark.parametrize('config', [
    'mmoco_vit-base-p16_8xb512-amp-coslr-300e_in1k.py',
    'mocov3_vit-small-p16_8xb128-amp-coslr-200e_in100.py'])
def test_train_dataloader_drops_the_last_partial_batch(
        config, imagenet_stand_in, tiny_image_folder):
    """MoCo v3 (main_moco.py) trains on full batches only: 16 images in
    batches of 6 are 2 steps, not 3 with a last batch of 4."""
    cfg = Config.fromfile(osp.join(REPO_ROOT, 'configs', 'mmoco', config))
    loader = cfg.train_dataloader
    loader.dataset.data_root = (tiny_image_folder if loader.dataset.type ==
                                'CustomDataset' else imagenet_stand_in)
    loader.update(batch_size=6, num_workers=0, persistent_workers=False)
    loader.dataset.pipeline[1].crop_size = 32
    from mmengine.registry import init_default_scope
    init_default_scope('mmpretrain')
    dataloader = Runner.build_dataloader(loader)
    assert len(dataloader.dataset) == 16
    batches = [len(batch['inputs'][0]) for batch in dataloader]
    assert batches == [6, 6]


def online_groups(model_cfg) -> int:
    """n, the online view's groups: ``num_chunks``, or the groups of the
    plans of the config's ``mask_generator`` (configs/mix)."""
    if model_cfg.get('mask_generator') is None:
        return model_cfg.num_chunks
    generator = MODELS.build(model_cfg.mask_generator)
    return generator(1, (8, 8)).num_groups


@pytest.mark.parametrize(
    'config', MMOCO_CONFIGS, ids=[osp.basename(p) for p in MMOCO_CONFIGS])
def test_config_trains_two_iterations(config, imagenet_stand_in,
                                      tiny_image_folder, train_in_process):
    cfg = shrunk_config(config, 'ContrastiveViews', head_channels=HIDDEN)
    assert cfg.model.type in ('MaskedMoCoV3', 'MaskedBYOL')
    hooks = [hook.type for hook in cfg.custom_hooks]
    assert 'TeacherEMAHook' in hooks
    options = run_options(cfg, tiny_image_folder, imagenet_stand_in)
    run = train_in_process(cfg, options)
    log = run.log
    iter_lines = [line for line in log.splitlines()
                  if 'Epoch(train)' in line]
    assert len(iter_lines) == ITERS, iter_lines  # logger interval 1
    # the vMF monitor logs κ for n >= 2 and skips n = 1 with a log line
    monitored = 'ConcentrationMonitorHook' in hooks and \
        online_groups(cfg.model) >= 2
    skipped = 'ConcentrationMonitorHook is skipped in this run: ' \
        'model.num_chunks = 1'
    assert (skipped in log) is (
        'ConcentrationMonitorHook' in hooks and not monitored), log[-4000:]
    momenta = []
    for line in iter_lines:
        loss = float(re.search(r'\bloss: ([-\d.e+]+)', line).group(1))
        assert torch.isfinite(torch.tensor(loss))
        momenta.append(float(
            re.search(r'\bteacher_momentum: ([\d.]+)', line).group(1)))
    # the config's cosine momentum: its base at the first iteration (0.99
    # in the paper configs, 0.9 in the short demo), then towards its end
    base, end = cfg.model.base_momentum, cfg.model.end_momentum
    assert momenta[0] == pytest.approx(base, abs=1e-4)
    assert all(base - 1e-4 <= m <= end + 1e-4 for m in momenta)
    for line in iter_lines:
        kappas = set(re.findall(r'\bkappa_(\w+): ', line))
        assert kappas == ({'rep', 'projector', 'predictor'}
                          if monitored else set()), line
    if cfg.optim_wrapper.type == 'AutoAmpOptimWrapper':
        assert 'AutoAmpOptimWrapper: float32 on cpu' in log

    checkpoint = torch.load(run.last_checkpoint, map_location='cpu')
    assert checkpoint['meta']['iter'] == ITERS
    state_dict = checkpoint['state_dict']
    assert state_dict['backbone.pos_embed'].shape == (1, 65, 64)
    assert state_dict['neck.fc2.weight'].shape == (
        cfg.model.neck.out_channels, HIDDEN)
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
