"""Checkpoint formats: timm -> mmpretrain mapping, detection, strict loading.

No downloads: tiny timm ViTs are saved in the release layouts and compared
with mmpretrain's ``VisionTransformer`` after conversion.
"""
import argparse
import pickle
from collections import OrderedDict

import pytest
import torch
from mmpretrain.models import VisionTransformer
from mmpretrain.models.utils import resize_pos_embed
from timm.models.vision_transformer import VisionTransformer as TimmViT
from torch import nn

from mmmoma.checkpoints import (CheckpointFormatError, CheckpointMismatchError,
                                detect_checkpoint_format,
                                load_backbone_state_dict,
                                load_state_dict_strict,
                                save_backbone_checkpoint,
                                timm_vit_to_mmpretrain)

IMG_SIZE = 32
PATCH_SIZE = 4
DEPTH = 2


def perturb_(module: nn.Module, std: float = 0.05) -> nn.Module:
    """Add noise to every parameter so no weight keeps its init value."""
    with torch.no_grad():
        for param in module.parameters():
            param.add_(torch.randn_like(param) * std)
    return module


def timm_vit(embed_dims: int = 64, num_heads: int = 4, **kwargs) -> TimmViT:
    kwargs.setdefault('num_classes', 0)
    model = TimmViT(
        img_size=IMG_SIZE,
        patch_size=PATCH_SIZE,
        embed_dim=embed_dims,
        depth=DEPTH,
        num_heads=num_heads,
        **kwargs)
    return perturb_(model).eval()


def mmpretrain_vit(embed_dims: int = 64,
                   num_heads: int = 4,
                   img_size: int = IMG_SIZE,
                   **kwargs) -> VisionTransformer:
    kwargs.setdefault('out_type', 'raw')
    vit = VisionTransformer(
        arch=dict(
            embed_dims=embed_dims,
            num_layers=DEPTH,
            num_heads=num_heads,
            feedforward_channels=4 * embed_dims),
        img_size=img_size,
        patch_size=PATCH_SIZE,
        **kwargs)
    vit.eval()  # BaseBackbone.train() returns None: no chaining
    return vit


def mae_decoder_keys(embed_dims: int = 64) -> dict:
    """Extra keys of an MAE ``*_full.pth`` file (decoder + mask token)."""
    return {
        'mask_token': torch.randn(1, 1, 32),
        'decoder_embed.weight': torch.randn(32, embed_dims),
        'decoder_pos_embed': torch.randn(1, 65, 32),
        'decoder_blocks.0.norm1.weight': torch.randn(32),
        'decoder_norm.weight': torch.randn(32),
        'decoder_pred.weight': torch.randn(48, 32),
    }


def mocov3_release(encoder: TimmViT, momentum: TimmViT) -> dict:
    """The MoCo v3 release layout, with a 3-layer BN projector as ``head``."""
    embed_dims = encoder.embed_dim
    for model in (encoder, momentum):
        model.head = nn.Sequential(
            nn.Linear(embed_dims, 32), nn.BatchNorm1d(32), nn.ReLU(),
            nn.Linear(32, 32), nn.BatchNorm1d(32), nn.ReLU(),
            nn.Linear(32, 16), nn.BatchNorm1d(16, affine=False))
    predictor = nn.Sequential(
        nn.Linear(16, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 16))
    state_dict = OrderedDict()
    for prefix, model in (('module.base_encoder.',
                           encoder), ('module.momentum_encoder.', momentum),
                          ('module.predictor.', predictor)):
        for key, value in model.state_dict().items():
            state_dict[prefix + key] = value
    return dict(epoch=300, arch='vit_small', state_dict=state_dict)


@torch.no_grad()
def assert_features_match(timm_model: TimmViT,
                          vit: VisionTransformer,
                          img_size: int = IMG_SIZE) -> None:
    images = torch.randn(2, 3, img_size, img_size)
    expected = timm_model.forward_features(images)  # includes final norm
    (actual, ) = vit(images)
    assert actual.shape == expected.shape
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=0)


def test_mae_release_features_match_timm():
    torch.manual_seed(0)
    timm_model = timm_vit()
    release = {'model': {**timm_model.state_dict(), **mae_decoder_keys()}}

    state_dict = load_backbone_state_dict(release)
    vit = mmpretrain_vit()
    num_loaded = load_state_dict_strict(vit, state_dict, name='mae')

    assert set(state_dict) == set(vit.state_dict())
    assert num_loaded == len(vit.state_dict())
    assert_features_match(timm_model, vit)


def test_mocov3_release_reads_base_encoder_only():
    torch.manual_seed(0)
    # MoCo v3 ViT-S layout: 12 heads (head dim 8 here).
    encoder = timm_vit(embed_dims=96, num_heads=12)
    momentum = timm_vit(embed_dims=96, num_heads=12)  # different weights
    release = mocov3_release(encoder, momentum)

    state_dict = load_backbone_state_dict(release)
    vit = mmpretrain_vit(embed_dims=96, num_heads=12)
    load_state_dict_strict(vit, state_dict)

    assert not any(key.startswith('head') for key in state_dict)
    encoder.head = nn.Identity()
    assert_features_match(encoder, vit)
    torch.testing.assert_close(vit.cls_token, encoder.cls_token)
    assert not torch.allclose(vit.cls_token, momentum.cls_token)


def test_fc_norm_and_layer_scale_mapping():
    """timm pooled features (fc_norm) == mmpretrain 'avg_featmap' (ln2)."""
    torch.manual_seed(0)
    timm_model = timm_vit(global_pool='avg', init_values=0.1)
    vit = mmpretrain_vit(
        out_type='avg_featmap', final_norm=False, layer_scale_init_value=0.1)

    state_dict = timm_vit_to_mmpretrain(timm_model.state_dict())
    assert 'ln2.weight' in state_dict and 'ln1.weight' not in state_dict
    assert 'layers.1.ffn.gamma2.weight' in state_dict
    load_state_dict_strict(vit, state_dict)

    images = torch.randn(2, 3, IMG_SIZE, IMG_SIZE)
    with torch.no_grad():
        expected = timm_model.forward_head(
            timm_model.forward_features(images), pre_logits=True)
        (actual, ) = vit(images)
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=0)


def test_unknown_timm_keys_raise_and_name_them():
    state_dict = timm_vit().state_dict()
    state_dict['dist_token'] = torch.zeros(1, 1, 64)
    state_dict['blocks.0.attn.q_norm.weight'] = torch.ones(16)
    with pytest.raises(CheckpointFormatError) as info:
        timm_vit_to_mmpretrain(state_dict)
    assert "'dist_token'" in str(info.value)
    assert "'blocks.0.attn.q_norm.weight'" in str(info.value)


def test_detect_checkpoint_format():
    timm_state = timm_vit().state_dict()
    vit_state = mmpretrain_vit().state_dict()
    mocov3 = mocov3_release(timm_vit(), timm_vit())
    training = {
        'meta': {
            'epoch': 3
        },
        'state_dict': {
            **{
                'backbone.' + k: v
                for k, v in vit_state.items()
            },
            'neck.decoder_embed.weight': torch.zeros(2, 2),
        }
    }
    assert detect_checkpoint_format({'model': timm_state}) == 'mae'
    assert detect_checkpoint_format(mocov3) == 'mocov3'
    assert detect_checkpoint_format(training) == 'mmpretrain'
    assert detect_checkpoint_format({'state_dict': vit_state}) == 'backbone'
    # The meta marker of our converters is enough (any backbone type).
    assert detect_checkpoint_format({
        'state_dict': {
            'stem.weight': torch.zeros(1)
        },
        'meta': {
            'checkpoint_format': 'backbone'
        }
    }) == 'backbone'


@pytest.mark.parametrize('checkpoint', [
    {
        'model': {
            'encoder.weight': torch.zeros(1)
        }
    },
    {
        'state_dict': {
            'encoder.weight': torch.zeros(1)
        }
    },
    {
        'weights': torch.zeros(1)
    },
    [torch.zeros(1)],
])
def test_unknown_format_raises_listing_formats(checkpoint):
    with pytest.raises(CheckpointFormatError) as info:
        detect_checkpoint_format(checkpoint)
    for name in ('mae', 'mocov3', 'mmpretrain', 'backbone'):
        assert repr(name) in str(info.value)


def test_mmpretrain_checkpoint_prefix_selects_submodule():
    torch.manual_seed(0)
    student, teacher = mmpretrain_vit(), perturb_(mmpretrain_vit())
    training = {'state_dict': OrderedDict()}
    for prefix, model in (('backbone.', student), ('teacher.', teacher)):
        for key, value in model.state_dict().items():
            training['state_dict'][prefix + key] = value
    training['state_dict']['head.fc.weight'] = torch.zeros(3, 64)

    for prefix, model in (('backbone.', student), ('teacher.', teacher)):
        state_dict = load_backbone_state_dict(training, prefix=prefix)
        assert list(state_dict) == list(model.state_dict())
        for key, value in model.state_dict().items():
            assert torch.equal(state_dict[key], value)

    with pytest.raises(CheckpointFormatError, match="'ema.'"):
        load_backbone_state_dict(training, prefix='ema.')
    with pytest.raises(ValueError, match="'backbone'"):
        load_backbone_state_dict(training, prefix='backbone')


def test_missing_keys_are_named():
    vit = mmpretrain_vit()
    state_dict = OrderedDict(mmpretrain_vit().state_dict())
    del state_dict['layers.1.ln2.weight'], state_dict['ln1.bias']

    with pytest.raises(CheckpointMismatchError) as info:
        load_state_dict_strict(vit, state_dict, name='teacher')
    message = str(info.value)
    assert 'teacher' in message and '2 missing' in message
    assert "'layers.1.ln2.weight'" in message and "'ln1.bias'" in message
    assert info.value.missing_keys == ['layers.1.ln2.weight', 'ln1.bias']

    # Allowed patterns excuse exactly the keys they match.
    with pytest.raises(CheckpointMismatchError) as info:
        load_state_dict_strict(vit, state_dict, allowed_missing=['ln1.*'])
    assert info.value.missing_keys == ['layers.1.ln2.weight']
    num_loaded = load_state_dict_strict(
        vit, state_dict, allowed_missing=['ln1.*', 'layers.*.ln2.weight'])
    assert num_loaded == len(vit.state_dict()) - 2


def test_unexpected_and_size_mismatched_keys_raise():
    vit = mmpretrain_vit()
    state_dict = OrderedDict(mmpretrain_vit().state_dict())
    state_dict['neck.fc.weight'] = torch.zeros(2)
    with pytest.raises(CheckpointMismatchError) as info:
        load_state_dict_strict(vit, state_dict)
    assert "'neck.fc.weight'" in str(info.value)
    assert info.value.unexpected_keys == ['neck.fc.weight']

    state_dict = OrderedDict(mmpretrain_vit().state_dict())
    state_dict['layers.0.attn.qkv.weight'] = torch.zeros(96, 64)
    with pytest.raises(CheckpointMismatchError) as info:
        load_state_dict_strict(vit, state_dict)
    assert 'layers.0.attn.qkv.weight' in str(info.value)
    assert 'size mismatch' in str(info.value)


def test_pos_embed_is_resized_to_the_model_grid():
    torch.manual_seed(0)
    vit_32px = perturb_(mmpretrain_vit())
    state_dict = vit_32px.state_dict()
    pos_embed_32px = state_dict['pos_embed'].clone()

    vit_48px = mmpretrain_vit(img_size=48)
    load_state_dict_strict(vit_48px, state_dict)

    expected = resize_pos_embed(
        pos_embed_32px, (8, 8), (12, 12), mode='bicubic', num_extra_tokens=1)
    assert vit_48px.pos_embed.shape == (1, 1 + 12 * 12, 64)
    torch.testing.assert_close(vit_48px.pos_embed.data, expected)
    assert torch.equal(state_dict['pos_embed'], pos_embed_32px)  # untouched
    # The 32 px model resizes on the fly in forward: same features at 48 px.
    images = torch.randn(2, 3, 48, 48)
    with torch.no_grad():
        torch.testing.assert_close(vit_48px(images)[0], vit_32px(images)[0])


def test_files_round_trip_and_errors(tmp_path):
    torch.manual_seed(0)
    timm_model = timm_vit()
    release_path = tmp_path / 'mae_pretrain.pth'
    torch.save({'model': timm_model.state_dict()}, release_path)
    state_dict = load_backbone_state_dict(release_path)

    backbone_path = tmp_path / 'out' / 'backbone.pth'
    save_backbone_checkpoint(state_dict, backbone_path, meta={'source': 'x'})
    reloaded = load_backbone_state_dict(str(backbone_path))
    assert list(reloaded) == list(state_dict)
    vit = mmpretrain_vit()
    load_state_dict_strict(vit, reloaded)
    assert_features_match(timm_model, vit)

    missing = tmp_path / 'nowhere.pth'
    with pytest.raises(FileNotFoundError, match='nowhere.pth'):
        load_backbone_state_dict(missing)

    # Arbitrary pickled objects are refused (weights_only=True).
    unsafe = tmp_path / 'unsafe.pth'
    release = {'model': timm_model.state_dict(), 'args': argparse.Namespace()}
    torch.save(release, unsafe)
    with pytest.raises(pickle.UnpicklingError, match='unsafe.pth'):
        load_backbone_state_dict(unsafe)


def test_simmim_mask_token_is_dropped_only_where_the_module_lacks_it(
        tmp_path):
    """A SimMIM-style student (MimCo) fine-tunes as a plain ViT: its
    ``mask_token`` is dropped, everything else loads strictly; a
    module that has a mask token still receives it; other stray keys
    still fail."""
    from mmmoma.checkpoints import load_backbone_weights
    from mmmoma.models.backbones import SimMIMViT
    arch = dict(embed_dims=32, num_layers=1, num_heads=2,
                feedforward_channels=64)
    student = SimMIMViT(arch=arch, img_size=16, patch_size=4)
    student.init_weights()
    path = tmp_path / 'mimco.pth'
    state = {f'backbone.{k}': v for k, v in student.state_dict().items()}
    torch.save({'state_dict': state}, path)

    plain = VisionTransformer(arch=arch, img_size=16, patch_size=4)
    assert load_backbone_weights(plain, str(path)) == len(plain.state_dict())
    for key, value in plain.state_dict().items():
        assert torch.equal(value, student.state_dict()[key]), key

    again = SimMIMViT(arch=arch, img_size=16, patch_size=4)
    load_backbone_weights(again, str(path))
    assert torch.equal(again.mask_token, student.mask_token)

    state['backbone.not_a_vit_key'] = torch.zeros(1)
    torch.save({'state_dict': state}, path)
    with pytest.raises(CheckpointMismatchError, match='not_a_vit_key'):
        load_backbone_weights(plain, str(path))
