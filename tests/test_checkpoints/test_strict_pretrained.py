import copy
import pickle
from collections import OrderedDict

import pytest
import torch
from mmengine.model import BaseModule, initialize
from mmengine.registry import WEIGHT_INITIALIZERS, DefaultScope
from mmpretrain.registry import MODELS
from torch import nn

from mmmoma.checkpoints import StrictPretrained
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


# --- any BaseModule loads last, also as the top-level module (issue 18) ---

VIT_CFG = dict(
    type='mmpretrain.VisionTransformer',
    arch=dict(embed_dims=32, num_layers=2, num_heads=2,
              feedforward_channels=64),
    img_size=32, patch_size=4, out_type='avg_featmap')


def strict_cfg(path, **kwargs):
    return dict(type='StrictPretrained', checkpoint=str(path), **kwargs)


class Parent(BaseModule):
    """A plain model around one backbone (the nested case)."""

    def __init__(self, backbone, init_cfg=None):
        super().__init__(init_cfg)
        self.backbone = MODELS.build(backbone)


@pytest.fixture
def vit_file(tmp_path):
    """A randomised plain mmpretrain ViT, saved; returns (path, source)."""
    torch.manual_seed(3)
    source = MODELS.build(VIT_CFG)
    path, _ = save_randomised(source, tmp_path / 'vit.pth')
    source.eval()  # mmpretrain's train() returns None, so not chained
    return path, source


def assert_is_source(model, source):
    """Every tensor is the file's, so the features are the source's."""
    loaded = model.state_dict()
    for key, value in source.state_dict().items():
        assert torch.equal(loaded[key], value), key
    model.eval()
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(images)[0], source(images)[0])


@pytest.mark.parametrize('nested', [False, True], ids=['top', 'child'])
def test_vision_transformer_loads_last(vit_file, nested):
    """``VisionTransformer.init_weights`` re-draws ``pos_embed`` after
    ``super().init_weights()``, and its layers re-draw their FFNs after
    mmengine applied the ViT's own init_cfg: top-level or as a child, the
    checkpoint's values must be what is left."""
    path, source = vit_file
    cfg = dict(VIT_CFG, init_cfg=strict_cfg(path))
    model = Parent(cfg) if nested else MODELS.build(cfg)
    model.init_weights()
    backbone = model.backbone if nested else model
    assert_is_source(backbone, source)
    assert backbone.is_init
    assert backbone.init_cfg == strict_cfg(path)  # put back after loading


def test_child_loads_after_the_parents_pretrained(vit_file, tmp_path):
    """The lower-level init_cfg wins, as in mmengine: a parent's
    ``Pretrained`` (applied after its children) must not overwrite the
    child's ``StrictPretrained``."""
    path, source = vit_file
    torch.manual_seed(11)
    whole = Parent(VIT_CFG)
    for param in whole.parameters():
        param.data.normal_()
    whole_path = tmp_path / 'whole.pth'
    torch.save({'state_dict': whole.state_dict()}, whole_path)
    model = Parent(
        dict(VIT_CFG, init_cfg=strict_cfg(path)),
        init_cfg=dict(type='Pretrained', checkpoint=str(whole_path)))
    model.init_weights()
    assert_is_source(model.backbone, source)


def test_top_level_swin_loads_last(tmp_path):
    """Swin's attention blocks re-draw their relative position tables."""
    torch.manual_seed(7)
    path, state = save_randomised(MODELS.build(SWIN_CFG),
                                  tmp_path / 'swin.pth')
    model = MODELS.build(dict(SWIN_CFG, init_cfg=strict_cfg(path)))
    model.init_weights()
    loaded = model.state_dict()
    for key, value in state.items():
        assert torch.equal(loaded[key], value), key


def test_class_defined_after_import_loads_last(tmp_path):
    """Classes defined after mmmoma's import get the same treatment, e.g.
    one that draws a parameter after ``super().init_weights()``."""

    class Late(BaseModule):

        def __init__(self, init_cfg=None):
            super().__init__(init_cfg)
            self.scale = nn.Parameter(torch.zeros(4))
            self.fc = nn.Linear(4, 4)

        def init_weights(self):
            super().init_weights()
            nn.init.normal_(self.scale)

    path, state = save_randomised(Late(), tmp_path / 'late.pth')
    model = Late(init_cfg=strict_cfg(path))
    model.init_weights()
    for key, value in state.items():
        assert torch.equal(model.state_dict()[key], value), key


def count_loads(monkeypatch):
    """Patch the loader; return {module name: number of loads}."""
    from mmmoma.checkpoints import strict_pretrained
    counts = {}
    load = strict_pretrained.load_backbone_weights

    def counting(module, *args, **kwargs):
        name = type(module).__name__
        counts[name] = counts.get(name, 0) + 1
        return load(module, *args, **kwargs)

    monkeypatch.setattr(strict_pretrained, 'load_backbone_weights', counting)
    return counts


@pytest.mark.parametrize('backbone', ['VisionTransformer', 'MaskedViT',
                                      'SimMIMViT'])
@pytest.mark.parametrize('nested', [False, True], ids=['top', 'child'])
def test_loaded_exactly_once(vit_file, monkeypatch, backbone, nested):
    """The wrapped ``init_weights`` of every class in the super() chain and
    the parent's deferral must not load again; nor a second
    ``init_weights`` call (mmengine initialises once)."""
    path, _ = vit_file
    cfg = dict(VIT_CFG, type=f'mmpretrain.{backbone}',
               init_cfg=strict_cfg(path, allowed_missing=['mask_token']))
    model = Parent(cfg) if nested else MODELS.build(cfg)
    counts = count_loads(monkeypatch)
    model.init_weights()
    assert counts == {backbone: 1}
    model.init_weights()
    assert counts == {backbone: 1}


@pytest.mark.parametrize('copy_fn', [
    copy.deepcopy, lambda module: pickle.loads(pickle.dumps(module))
], ids=['deepcopy', 'pickle'])
@pytest.mark.parametrize('nested', [False, True], ids=['top', 'child'])
def test_copies_still_load_last(vit_file, copy_fn, nested):
    """mmengine deep-copies models (EMA); the copy must load last too."""
    path, source = vit_file
    cfg = dict(VIT_CFG, init_cfg=strict_cfg(path))
    model = copy_fn(Parent(cfg) if nested else MODELS.build(cfg))
    model.init_weights()
    assert_is_source(model.backbone if nested else model, source)


def test_failed_load_can_be_retried(vit_file, tmp_path):
    """As after a failing mmengine ``Pretrained``, the module is left
    uninitialised, so a second call loads instead of skipping."""
    path, source = vit_file
    model = MODELS.build(dict(VIT_CFG,
                              init_cfg=strict_cfg(tmp_path / 'missing.pth')))
    with pytest.raises(FileNotFoundError):
        model.init_weights()
    assert not model.is_init
    model.init_cfg = strict_cfg(path)
    model.init_weights()
    assert_is_source(model, source)


@pytest.mark.parametrize('scope', [None, 'mmpretrain', 'mmseg'])
@pytest.mark.parametrize('init_type',
                         ['StrictPretrained', 'mmpretrain.StrictPretrained'])
def test_registered_for_any_default_scope(vit_file, monkeypatch, scope,
                                          init_type):
    """Without a default scope (plain python) mmengine builds init_cfg types
    from its root registry; mmseg's registry falls back to the root."""
    path, source = vit_file
    monkeypatch.setattr(DefaultScope, '_instance_dict', OrderedDict())
    with DefaultScope.overwrite_default_scope(scope):
        assert DefaultScope.get_current_instance() is None or (
            DefaultScope.get_current_instance().scope_name == scope)
        cfg = dict(type=init_type, checkpoint=str(path))
        assert isinstance(WEIGHT_INITIALIZERS.build(cfg), StrictPretrained)
        model = MODELS.build(dict(VIT_CFG, init_cfg=cfg))
        model.init_weights()
        assert_is_source(model, source)
        initialize(model, cfg)  # mmengine's own path: loads, no KeyError
