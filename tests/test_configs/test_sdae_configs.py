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
    assert len(names) == 8, names  # + Table 5 row 1 (no teacher norm)


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


def tiny_model_from(cfg: Config):
    """The config's SdAE with the shrunk ViT / decoder of the smoke test."""
    from mmpretrain.registry import MODELS
    model_cfg = cfg.model.copy()
    model_cfg.backbone = dict(
        cfg.model.backbone, arch=SHRUNK_ARCH, img_size=32, patch_size=4)
    model_cfg.neck = dict(
        cfg.model.neck, num_patches=64, patch_size=4, decoder_embed_dim=32,
        decoder_depth=1, decoder_num_heads=4)
    return MODELS.build(model_cfg)


@pytest.mark.parametrize('config,no_decay_tokens', [
    ('configs/sdae/sdae_vit-base-p16_8xb96-amp-coslr-300e_in1k.py', ()),
    ('configs/sdae/sdae_vit-base-p16_8xb96-amp-coslr-100e_in1k.py', ()),
    ('configs/demo/sdae_vit-tiny-p4_1xb128-100e_digit-scenes.py',
     ('pos_embed', 'cls_token', 'mask_token')),
])
def test_weight_decay_groups_are_official(config, no_decay_tokens):
    """No weight decay on every 1-D parameter (biases, every norm incl.
    ``ln1``), decay elsewhere: official main_pretrain.py (timm's
    ``add_weight_decay``, no skip list, so the CLS / mask tokens decay). The
    demo schedule (shared with the MAE demo) also spares the tokens, as
    mmpretrain's MAE config."""
    from mmengine.optim import build_optim_wrapper

    import mmmoma  # noqa: F401 (registers SdAE)
    cfg = Config.fromfile(osp.join(REPO_ROOT, config))
    model = tiny_model_from(cfg)
    optim_cfg = cfg.optim_wrapper.copy()
    optim_cfg.type = 'OptimWrapper'  # AmpOptimWrapper needs a GPU
    optim_cfg.pop('loss_scale', None)
    optimizer = build_optim_wrapper(model, optim_cfg).optimizer
    names = {id(p): n for n, p in model.named_parameters()}
    no_decay, decay = set(), set()
    for group in optimizer.param_groups:
        for param in group['params']:
            if param.requires_grad:
                (no_decay if group['weight_decay'] == 0 else decay).add(
                    names[id(param)])
    want = {n for n, p in model.named_parameters() if p.requires_grad and (
        p.ndim == 1 or any(k in n for k in no_decay_tokens))}
    assert no_decay == want
    assert {'backbone.ln1.weight', 'backbone.ln1.bias',
            'backbone.layers.0.ln1.weight', 'backbone.layers.0.ln2.bias',
            'neck.decoder_embed.bias'} <= no_decay
    tokens = {'backbone.cls_token', 'neck.mask_token'}
    assert tokens <= (no_decay if no_decay_tokens else decay)
    assert 'backbone.layers.0.attn.qkv.weight' in decay
    assert decay == {n for n, p in model.named_parameters()
                     if p.requires_grad} - want
