"""mmmoma.utils.model_shrinking: one generic shrinker for every model config
of the project (algorithms, teachers, mmpretrain baselines, classifiers,
mmseg segmentors)."""
import copy
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmpretrain.registry import MODELS

from mmmoma.utils.config_tools import load_config
from mmmoma.utils.model_shrinking import (constructor_default,
                                          registered_class, resolve_swin_arch,
                                          resolve_vit_arch, shrink_model)

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TINY = dict(embed_dims=64, num_layers=2, num_heads=4, feedforward_channels=256)
SWIN = dict(embed_dims=16, depths=[1, 1], num_heads=[2, 2])
MAE = 'mmpretrain::mae/mae_vit-base-p16_8xb512-amp-coslr-300e_in1k.py'
MOCOV3 = ('mmpretrain::mocov3/'
          'mocov3_vit-base-p16_16xb256-amp-coslr-300e_in1k.py')


def config(*parts: str) -> Config:
    return Config.fromfile(osp.join(REPO_ROOT, 'configs', *parts))


def parameters(module: torch.nn.Module, prefix: str) -> dict:
    return {name: p for name, p in module.named_parameters()
            if name.startswith(prefix)}


def test_arch_names_and_errors():
    assert resolve_vit_arch('b')['embed_dims'] == 768
    assert resolve_vit_arch('mocov3-small')['num_heads'] == 12
    assert resolve_swin_arch('tiny')['depths'] == [2, 2, 6, 2]
    with pytest.raises(ValueError, match='allowed names'):
        resolve_vit_arch('gigantic')
    with pytest.raises(ValueError, match='exactly the keys'):
        resolve_vit_arch(dict(embed_dims=64))
    with pytest.raises(ValueError, match='not divisible'):
        resolve_vit_arch(dict(TINY, num_heads=3))
    with pytest.raises(ValueError, match='differ in length'):
        resolve_swin_arch(dict(SWIN, depths=[1]))


def test_constructor_defaults_follow_kwargs_only():
    vit = registered_class('MaskedViT')
    assert constructor_default(vit, 'img_size') == 224
    assert constructor_default(vit, 'no_such_argument') is not None
    # SimMIMSwinTransformer's __init__ has no **kwargs: SwinTransformer's
    # window_size is not its argument
    swin = registered_class('SimMIMSwinTransformer')
    assert constructor_default(swin, 'img_size') == 224
    assert constructor_default(swin, 'window_size') is \
        constructor_default(swin, 'no_such_argument')
    assert registered_class('NoSuchModel') is None
    assert registered_class(dict) is dict


def test_mae_and_mocov3_baselines():
    mae = load_config(MAE)
    changes = shrink_model(mae.model, TINY, 32, 4)
    assert mae.model.backbone.arch == TINY
    assert (mae.model.backbone.img_size, mae.model.backbone.patch_size) == \
        (32, 4)
    assert mae.model.neck.num_patches == 64
    assert mae.model.neck.embed_dim == 64
    assert mae.model.neck.decoder_embed_dim == 512  # no head_channels
    assert mae.model.neck.patch_size == mae.model.head.patch_size == 4
    assert 'model.neck.num_patches: 196 -> 64' in changes

    mocov3 = load_config(MOCOV3)
    shrink_model(mocov3.model, TINY, 32, 4)
    assert mocov3.model.backbone.arch == TINY
    assert mocov3.model.neck.in_channels == 64
    assert mocov3.model.neck.hid_channels == 4096
    assert mocov3.model.head.predictor.in_channels == 256
    model = MODELS.build(mocov3.model)
    assert model.backbone.embed_dims == 64
    assert len(model.backbone.layers) == 2


def test_head_channels_shrink_hidden_widths_and_decoders():
    cfg = config('sdae', 'sdae_vit-base-p16_8xb96-amp-coslr-300e_in1k.py')
    shrink_model(cfg.model, TINY, 32, 4, head_channels=32)
    neck = cfg.model.neck
    assert (neck.decoder_embed_dim, neck.decoder_depth) == (32, 1)
    assert 32 % neck.decoder_num_heads == 0
    model = MODELS.build(cfg.model)
    assert model.backbone.pos_embed.shape == (1, 65, 64)
    assert model.neck.decoder_embed.weight.shape == (32, 64)
    assert len(model.neck.decoder_blocks) == 1


def test_mmoco_cross_attention_heads_follow_the_width():
    cfg = config('mmoco',
                 'mmoco-ca-strong-aug_vit-small-p16_8xb128-amp-coslr-800e_'
                 'in100.py')
    shrink_model(cfg.model, TINY, 32, 4, head_channels=32)
    assert cfg.model.cross_attention.num_heads == 4  # 12 does not divide 64
    assert cfg.model.neck.hid_channels == cfg.model.predictor.hid_channels \
        == 32
    model = MODELS.build(cfg.model)
    assert model.neck.fc0.weight.shape == (32, 64)


def test_every_teacher_gets_the_arch():
    cfg = config('moma',
                 'moma-multi-teacher_vit-base-p16_8xb512-amp-coslr-100e_'
                 'in1k.py')
    shrink_model(cfg.model, TINY, 32, 4)
    networks = [spec.teacher.network for spec in cfg.model.teachers.values()]
    assert len(networks) == 2
    for network in [cfg.model.backbone, *networks]:
        assert (network.arch, network.img_size, network.patch_size) == (
            TINY, 32, 4)


def test_mimco_swin_student_and_teacher():
    cfg = config('mimco', 'mimco_swin-tiny_8xb256-amp-coslr-100e_in1k.py')
    shrink_model(cfg.model, TINY, 32, 4, swin_arch=SWIN, window_size=2,
                 head_channels=32)
    student, teacher = cfg.model.backbone, cfg.model.teacher.network
    assert student.arch == teacher.arch == resolve_swin_arch(SWIN)
    # SimMIMSwinTransformer takes its window through stage_cfgs
    assert student.stage_cfgs.window_size == teacher.window_size == 2
    assert 'window_size' not in student
    # the last stage stays the output
    assert tuple(student.out_indices) == tuple(teacher.out_indices) == (1, )
    assert cfg.model.patch_projector.hidden_channels == 32
    cfg.model.teacher.checkpoint = None
    network = MODELS.build(teacher)
    assert network(torch.zeros(1, 3, 32, 32))[-1].shape == (1, 32, 4, 4)


def test_swin_is_left_alone_without_swin_arch():
    cfg = config('mimco', 'mimco_swin-tiny_8xb256-amp-coslr-100e_in1k.py')
    before = copy.deepcopy(cfg.model)
    with pytest.raises(ValueError, match='need swin_arch'):
        shrink_model(cfg.model, TINY, 32, 4)
    assert cfg.model.backbone == before.backbone


def test_classifier_linear_probe_and_swin_finetune():
    cfg = config('benchmarks', 'mmpretrain',
                 'vit-base-p16_sdae-pre_8xb2048-linear-coslr-90e_in1k.py')
    shrink_model(cfg.model, TINY, 224, 16)
    assert cfg.model.backbone.frozen_stages == 2  # every block, as before
    assert cfg.model.neck.input_features == cfg.model.head.in_channels == 64
    cfg.model.backbone.init_cfg = None
    model = MODELS.build(cfg.model)
    assert not any(p.requires_grad
                   for p in parameters(model, 'backbone.layers').values())

    cfg = config('benchmarks', 'mmpretrain',
                 'swin-base_mimco-pre_8xb128-coslr-100e_in1k.py')
    arch = dict(embed_dims=8, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2])
    shrink_model(cfg.model, TINY, 224, 16, swin_arch=arch)
    assert cfg.model.head.in_channels == 64  # 8 x 2 ** 3


@pytest.mark.parametrize('name,width', [
    ('upernet_vit-base-p16_8xb2-amp-160k_ade20k-512x512.py', [32] * 4),
    ('mimco_upernet_swin-tiny_8xb2-160k_ade20k-512x512.py', [8, 16, 32, 64])
])
def test_mmseg_upernet(name, width):
    cfg = config('benchmarks', 'mmseg', name)
    vit = dict(embed_dims=32, num_layers=4, num_heads=2,
               feedforward_channels=64)
    swin = dict(embed_dims=8, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2])
    size = 64 if 'swin' in name else 32
    shrink_model(cfg.model, vit, size, 4, swin_arch=swin, window_size=2,
                 head_channels=16, scope='mmseg')
    model_cfg = cfg.model
    assert model_cfg.decode_head.in_channels == width
    assert model_cfg.auxiliary_head.in_channels == width[2]
    assert model_cfg.decode_head.channels == \
        model_cfg.auxiliary_head.channels == 16
    assert tuple(model_cfg.data_preprocessor.size) == (size, size)
    if 'vit' in name:
        assert list(model_cfg.backbone.out_indices) == [0, 1, 2, 3]
        assert model_cfg.neck.embed_dim == 32
        assert tuple(model_cfg.test_cfg.crop_size) == (32, 32)
        assert tuple(model_cfg.test_cfg.stride) == (21, 21)
    model_cfg.backbone.init_cfg = None
    init_default_scope('mmseg')
    try:
        from mmseg.registry import MODELS as SEG_MODELS
        model = SEG_MODELS.build(model_cfg)
        features = model.extract_feat(torch.zeros(1, 3, size, size))
        assert [f.shape[1] for f in features] == width
    finally:
        init_default_scope('mmpretrain')


def test_too_few_blocks_for_the_outputs():
    cfg = config('benchmarks', 'mmseg',
                 'upernet_vit-base-p16_8xb2-amp-160k_ade20k-512x512.py')
    with pytest.raises(ValueError, match='4 outputs'):
        shrink_model(cfg.model, TINY, 32, 4, scope='mmseg')
    with pytest.raises(ValueError, match='not divisible'):
        shrink_model(cfg.model, TINY, 30, 4, scope='mmseg')
