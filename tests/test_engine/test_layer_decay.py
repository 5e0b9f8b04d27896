"""BackboneLayerDecayOptimWrapperConstructor: per-layer lrs for classifiers
and mmseg segmentors, checked against decay ** (L - i) and against mmseg's
own constructor on mmseg's MAE backbone."""
import pytest
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope
from mmpretrain.registry import MODELS
from mmseg.registry import MODELS as SEG_MODELS

LR = 1e-3
DECAY = 0.5
ARCH = dict(embed_dims=32, num_layers=4, num_heads=2, feedforward_channels=64)
L = ARCH['num_layers']


def optim_cfg(decay=DECAY, scope='mmpretrain', **paramwise):
    prefix = 'mmpretrain.' if scope == 'mmseg' else ''
    return dict(
        type='OptimWrapper',
        optimizer=dict(type='AdamW', lr=LR, weight_decay=0.05),
        constructor=f'{prefix}BackboneLayerDecayOptimWrapperConstructor',
        paramwise_cfg=dict(layer_decay_rate=decay, **paramwise))


def lr_by_name(optim_wrapper):
    return {
        group['param_name']: group['lr']
        for group in optim_wrapper.optimizer.param_groups
    }


def classifier():
    return MODELS.build(dict(
        type='ImageClassifier',
        backbone=dict(type='MaskedViT', arch=ARCH, img_size=32, patch_size=4,
                      out_type='avg_featmap'),
        head=dict(type='LinearClsHead', num_classes=10, in_channels=32)))


def segmentor(backbone=None):
    backbone = backbone or dict(
        type='mmpretrain.MaskedViT', arch=ARCH, img_size=32, patch_size=4,
        out_type='featmap', out_indices=[0, 1, 2, 3])
    return SEG_MODELS.build(dict(
        type='EncoderDecoder',
        data_preprocessor=dict(type='SegDataPreProcessor'),
        backbone=backbone,
        neck=dict(type='Feature2Pyramid', embed_dim=32,
                  rescales=[4, 2, 1, 0.5], norm_cfg=dict(type='BN')),
        decode_head=dict(
            type='UPerHead', in_channels=[32] * 4, in_index=[0, 1, 2, 3],
            channels=16, num_classes=5, norm_cfg=dict(type='BN')),
        auxiliary_head=dict(
            type='FCNHead', in_channels=32, in_index=2, channels=8,
            num_classes=5, norm_cfg=dict(type='BN'))))


def expected_vit_lrs(prefix='backbone.'):
    """The BEiT / MAE rule: stem decay^(L+1), block i decay^(L-i)."""
    lrs = {
        f'{prefix}patch_embed.projection.weight': LR * DECAY**(L + 1),
        f'{prefix}cls_token': LR * DECAY**(L + 1),
        f'{prefix}pos_embed': LR * DECAY**(L + 1),
        f'{prefix}ln1.weight': LR,
    }
    for i in (0, L // 2, L - 1):  # first, middle, last block
        lrs[f'{prefix}layers.{i}.attn.qkv.weight'] = LR * DECAY**(L - i)
        lrs[f'{prefix}layers.{i}.ffn.layers.1.bias'] = LR * DECAY**(L - i)
    return lrs


def test_classifier_lrs_follow_decay_per_layer():
    lrs = lr_by_name(build_optim_wrapper(classifier(), optim_cfg()))
    for name, lr in expected_vit_lrs().items():
        assert lrs[name] == pytest.approx(lr), name
    assert lrs['head.fc.weight'] == pytest.approx(LR)


def test_segmentor_lrs_follow_decay_per_layer_under_the_mmseg_scope():
    with DefaultScope.overwrite_default_scope('mmseg'):
        model = segmentor()
        lrs = lr_by_name(build_optim_wrapper(model, optim_cfg(scope='mmseg')))
    for name, lr in expected_vit_lrs().items():
        assert lrs[name] == pytest.approx(lr), name
    heads = [name for name in lrs if not name.startswith('backbone.')]
    assert any(name.startswith('decode_head.') for name in heads)
    assert any(name.startswith('auxiliary_head.') for name in heads)
    assert any(name.startswith('neck.') for name in heads)
    for name in heads:  # everything after the backbone: full lr
        assert lrs[name] == pytest.approx(LR), name
    # every trainable parameter is in exactly one group
    num_params = sum(1 for p in model.parameters() if p.requires_grad)
    assert len(lrs) == num_params


def test_matches_mmseg_constructor_on_mmseg_mae():
    """mmseg's LayerDecayOptimizerConstructor on its own MAE backbone (the
    class-name path) gives the same per-block lrs as ours on MaskedViT."""
    with DefaultScope.overwrite_default_scope('mmseg'):
        ours = lr_by_name(build_optim_wrapper(
            segmentor(), optim_cfg(scope='mmseg')))
        mae = segmentor(dict(
            type='MAE', img_size=32, patch_size=4, embed_dims=32,
            num_layers=L, num_heads=2, mlp_ratio=2, out_indices=[0, 1, 2, 3]))
        theirs_wrapper = build_optim_wrapper(mae, dict(
            type='OptimWrapper',
            optimizer=dict(type='AdamW', lr=LR, weight_decay=0.05),
            constructor='LayerDecayOptimizerConstructor',
            paramwise_cfg=dict(num_layers=L, layer_decay_rate=DECAY)))
    theirs = {}
    for group in theirs_wrapper.optimizer.param_groups:
        layer_id = int(group['group_name'].split('_')[1])
        theirs[layer_id] = group['lr']
    for i in range(L):
        assert ours[f'backbone.layers.{i}.attn.qkv.weight'] == \
            pytest.approx(theirs[i + 1])
    assert ours['backbone.cls_token'] == pytest.approx(theirs[0])
    assert ours['decode_head.conv_seg.weight'] == pytest.approx(
        theirs[L + 1])


def test_weight_decay_rules_are_mmpretrain_ones():
    cfg = optim_cfg(flat_decay_mult=0.0,
                    custom_keys={'.pos_embed': dict(decay_mult=0.0)})
    groups = {
        group['param_name']: group
        for group in build_optim_wrapper(classifier(),
                                         cfg).optimizer.param_groups
    }
    assert groups['backbone.pos_embed']['weight_decay'] == 0
    assert groups['backbone.layers.0.ln1.weight']['weight_decay'] == 0
    assert groups['backbone.layers.0.attn.qkv.weight']['weight_decay'] == \
        pytest.approx(0.05)


@pytest.mark.parametrize('decay', [0, -0.5, 1.5, True, 'x'])
def test_bad_decay_rate_names_the_field(decay):
    with pytest.raises(ValueError, match='paramwise_cfg.layer_decay_rate'):
        build_optim_wrapper(classifier(), optim_cfg(decay=decay))


def test_model_without_layer_depths_is_refused():
    from torch import nn
    model = nn.Sequential(nn.Linear(2, 2))
    with pytest.raises(TypeError, match='get_layer_depth'):
        build_optim_wrapper(model, optim_cfg())
