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


@pytest.fixture
def pretrained(tmp_path, tiny_arch):
    torch.manual_seed(5)
    source = MaskedViT(arch=tiny_arch, img_size=32, patch_size=4)
    for param in source.parameters():  # distinct from any initialiser
        param.data.normal_()
    path = tmp_path / 'pretrain.pth'
    torch.save({'state_dict': {f'backbone.{k}': v
                               for k, v in source.state_dict().items()},
                'meta': {}}, path)
    return path, source.state_dict()


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
