"""Every SdAE config trains for 2 iterations, as tools/train.py trains it.

Each config (configs/sdae/*.py, configs/demo/sdae_*.py) is shrunk by
:func:`mmmoma.utils.model_shrinking.shrink_model` (a tiny ViT, from which
the teacher is built too, 32 px images, a one-block 32-wide decoder) and
pointed at a 16-image stand-in dataset in the config's own dataset type,
one epoch of 2 iterations, then trained in the pytest process through
tools/train.py's own config merging (``train_in_process``). The algorithm,
its teacher input, the pipeline and the schedule are the config's own. AMP
configs fall back to fp32 on the CPU
(``mmmoma.compat.amp_to_fp32_without_gpu``).
"""
import copy
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from mmmoma.utils.model_shrinking import shrink_model

from ..test_tools.utils import REPO_ROOT
from .pretrain_stand_in import (TINY_VIT, data_options, method_configs,
                                shrunk_config)

SDAE_CONFIGS = method_configs('sdae', 'sdae_*.py')
DECODER = 32  # decoder width (head_channels)


def test_sdae_configs_found():
    names = [osp.basename(path) for path in SDAE_CONFIGS]
    # + Table 5 row 1 (no teacher norm), + the mix (configs/mix)
    assert len(names) == 9, names


@pytest.mark.parametrize(
    'config', SDAE_CONFIGS, ids=[osp.basename(p) for p in SDAE_CONFIGS])
def test_config_trains_two_iterations(config, imagenet_stand_in,
                                      tiny_image_folder, train_in_process):
    cfg = shrunk_config(config, 'RandomResizedCrop', head_channels=DECODER)
    assert cfg.model.type == 'SdAE'
    assert 'TeacherEMAHook' in [hook.type for hook in cfg.custom_hooks]
    options = data_options(cfg, tiny_image_folder, imagenet_stand_in)
    run = train_in_process(cfg, options)
    log = run.log
    assert log.count('Epoch(train)') == 2, log[-4000:]  # logger interval 1
    if cfg.optim_wrapper.type == 'AutoAmpOptimWrapper':
        assert 'AutoAmpOptimWrapper: float32 on cpu' in log

    checkpoint = torch.load(run.last_checkpoint, map_location='cpu')
    assert checkpoint['meta']['iter'] == 2
    state_dict = checkpoint['state_dict']
    # the per-epoch EMA update ran once, before the checkpoint was saved
    assert int(state_dict['teacher_updates']) == 1
    assert state_dict['backbone.pos_embed'].shape == (1, 65, 64)
    assert state_dict['neck.decoder_pred.weight'].shape == (64, DECODER)
    teacher_keys = {k[len('teacher.'):] for k in state_dict
                    if k.startswith('teacher.')}
    student_keys = {k[len('backbone.'):] for k in state_dict
                    if k.startswith('backbone.')}
    assert teacher_keys == student_keys


def tiny_model_from(cfg: Config):
    """The config's SdAE with the shrunk ViT / decoder of the smoke test."""
    from mmpretrain.registry import MODELS
    model_cfg = copy.deepcopy(cfg.model)
    shrink_model(model_cfg, TINY_VIT, img_size=32, patch_size=4,
                 head_channels=DECODER)
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
    # AutoAmpOptimWrapper: fp32 on the CPU
    optimizer = build_optim_wrapper(model,
                                    cfg.optim_wrapper.copy()).optimizer
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
