import pytest
import torch
from mmpretrain.registry import MODELS

from mmmoma.models.backbones import MaskedViT


def backbone_cfg(arch, checkpoint, **kwargs):
    return dict(
        type='MaskedViT', arch=arch, img_size=32, patch_size=4,
        out_type='avg_featmap',
        init_cfg=dict(type='StrictPretrained', checkpoint=str(checkpoint),
                      **kwargs))


def save_randomised(source, path):
    """Draw every parameter of ``source`` from N(0, 1) (distinct from any
    initialiser); save it as the backbone of a training checkpoint."""
    for param in source.parameters():
        param.data.normal_()
    torch.save({'state_dict': {f'backbone.{k}': v
                               for k, v in source.state_dict().items()},
                'meta': {}}, path)
    return path, source.state_dict()


@pytest.fixture
def pretrained(tmp_path, tiny_arch):
    torch.manual_seed(5)
    return save_randomised(
        MaskedViT(arch=tiny_arch, img_size=32, patch_size=4),
        tmp_path / 'pretrain.pth')


def test_loads_after_random_init_and_nothing_overwrites_it(
        pretrained, tiny_arch):
    path, state = pretrained
    model = MODELS.build(backbone_cfg(tiny_arch, path,
                                      allowed_missing=['ln2.*']))
    model.init_weights()
    loaded = model.state_dict()
    for key, value in state.items():
        # incl. pos_embed (VisionTransformer re-draws it after init_cfg) and
        # the FFNs (TransformerEncoderLayer re-initialises them)
        assert torch.equal(loaded[key], value), key
    assert torch.equal(loaded['ln2.weight'], torch.ones(tiny_arch[
        'embed_dims']))  # the new fc_norm keeps its default init


def test_missing_keys_and_wrong_prefix_fail_loudly(pretrained, tiny_arch):
    path, _ = pretrained
    model = MODELS.build(backbone_cfg(tiny_arch, path))  # ln2 not allowed
    with pytest.raises(Exception, match='ln2.weight'):
        model.init_weights()
    model = MODELS.build(backbone_cfg(tiny_arch, path, prefix='encoder.',
                                      allowed_missing=['ln2.*']))
    with pytest.raises(Exception, match='encoder.'):
        model.init_weights()


def test_checkpoint_is_required(tiny_arch, tmp_path):
    model = MODELS.build(dict(backbone_cfg(tiny_arch, ''), init_cfg=dict(
        type='StrictPretrained', checkpoint=None)))
    with pytest.raises(ValueError, match='checkpoint'):
        model.init_weights()
    model = MODELS.build(backbone_cfg(tiny_arch, tmp_path / 'missing.pth'))
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        model.init_weights()


SWIN_CFG = dict(
    type='SwinTransformer', arch=dict(embed_dims=16, depths=[2, 2],
                                      num_heads=[2, 2]),
    img_size=32, window_size=4, out_indices=(1, ))


def test_nested_swin_loads_after_its_children_init(tmp_path):
    """mmengine runs a non-``Pretrained`` init_cfg before the children's
    ``init_weights``; Swin's WindowMSA then re-draws its relative position
    tables. As the backbone of a classifier, every tensor must still be the
    checkpoint's."""
    torch.manual_seed(7)
    path, state = save_randomised(MODELS.build(SWIN_CFG),
                                  tmp_path / 'swin.pth')
    classifier = MODELS.build(dict(
        type='ImageClassifier',
        backbone=dict(SWIN_CFG, init_cfg=dict(
            type='StrictPretrained', checkpoint=str(path))),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=3, in_channels=32)))
    classifier.init_weights()
    loaded = classifier.backbone.state_dict()
    tables = [key for key in state if 'relative_position_bias_table' in key]
    assert tables
    for key, value in state.items():
        assert torch.equal(loaded[key], value), key
    # the cfg is put back after loading, and the head got its own init
    assert classifier.backbone.init_cfg['checkpoint'] == str(path)
    assert classifier.head.fc.weight.abs().max() < 1


def test_scoped_name_loads_under_the_mmseg_scope(pretrained, tiny_arch):
    """mmseg configs name it 'mmpretrain.StrictPretrained' or plainly."""
    from mmengine.registry import DefaultScope
    from mmseg.registry import MODELS as SEG_MODELS
    path, state = pretrained
    for init_type in ('StrictPretrained', 'mmpretrain.StrictPretrained'):
        with DefaultScope.overwrite_default_scope('mmseg'):
            model = SEG_MODELS.build(dict(
                backbone_cfg(tiny_arch, path, allowed_missing=['ln2.*']),
                type='mmpretrain.MaskedViT',
                init_cfg=dict(type=init_type, checkpoint=str(path),
                              allowed_missing=['ln2.*'])))
            model.init_weights()
        assert torch.equal(model.state_dict()['pos_embed'],
                           state['pos_embed'])
