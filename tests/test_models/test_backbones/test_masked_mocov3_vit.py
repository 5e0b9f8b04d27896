"""MaskedMoCoV3ViT: MoCo v3's ViT (init, sin-cos position embedding, frozen
patch embedding) with MaskedViT's grouped forward."""
import pytest
import torch
from mmpretrain.models.selfsup import MoCoV3ViT
from mmpretrain.models.utils import build_2d_sincos_position_embedding
from mmpretrain.registry import MODELS

from mmmoma.models.backbones import MaskedMoCoV3ViT, MaskedViT


def build(cls, arch, seed: int = 0, **kwargs):
    torch.manual_seed(seed)
    net = cls(arch=arch, img_size=32, patch_size=4, **kwargs)
    net.init_weights()
    return net


def test_init_equals_mocov3_vit(tiny_arch):
    ours = build(MaskedMoCoV3ViT, tiny_arch)
    ref = build(MoCoV3ViT, tiny_arch)
    assert isinstance(ours, MaskedViT) and isinstance(ours, MoCoV3ViT)
    ours_state, ref_state = ours.state_dict(), ref.state_dict()
    assert list(ours_state) == list(ref_state)
    for name, value in ref_state.items():
        assert torch.equal(ours_state[name], value), name
    # the init is MoCo v3's, not VisionTransformer's: zero biases, tiny CLS
    assert torch.equal(ours.layers[0].attn.qkv.bias,
                       torch.zeros_like(ours.layers[0].attn.qkv.bias))
    assert ours.cls_token.abs().max() < 1e-4
    # a different seed gives different weights (the comparison is not void)
    other = build(MaskedMoCoV3ViT, tiny_arch, seed=1)
    assert not torch.equal(other.layers[0].attn.qkv.weight,
                           ours.layers[0].attn.qkv.weight)


def test_position_embedding_is_fixed_sincos(tiny_arch):
    net = build(MaskedMoCoV3ViT, tiny_arch)
    assert not net.pos_embed.requires_grad
    assert net.pos_embed_type == 'sincos'
    expected = build_2d_sincos_position_embedding(8, 64, cls_token=True)
    torch.testing.assert_close(net.pos_embed.data, expected.float())


def test_state_dict_loads_strictly_into_mocov3_vit_with_same_outputs(
        tiny_arch):
    ours = build(MaskedMoCoV3ViT, tiny_arch, seed=3).eval()
    ref = build(MoCoV3ViT, tiny_arch, seed=4)
    ref.load_state_dict(ours.state_dict(), strict=True)
    ref.eval()
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(ours(x)[0], ref(x)[0])
    # all patches as one group through the grouped path: the same CLS token
    all_ids = torch.arange(64).expand(2, -1)
    grouped = ours(x, token_ids=all_ids)[-1]
    torch.testing.assert_close(grouped[:, 0], ref(x)[0], atol=1e-5, rtol=0)


def test_train_returns_self(tiny_arch):
    net = build(MaskedMoCoV3ViT, tiny_arch)
    assert net.train() is net and net.training
    assert net.train(False) is net and not net.training
    assert net.eval() is net


@pytest.mark.parametrize('stop_grad_conv1', [True, False])
def test_frozen_patch_embedding(tiny_arch, stop_grad_conv1):
    net = build(MaskedMoCoV3ViT, tiny_arch, stop_grad_conv1=stop_grad_conv1)
    projection = net.patch_embed.projection
    assert projection.weight.requires_grad is not stop_grad_conv1
    assert projection.bias.requires_grad is not stop_grad_conv1
    net(torch.randn(2, 3, 32, 32), token_ids=torch.arange(64).expand(
        2, -1), num_groups=4)[-1].sum().backward()
    assert (projection.weight.grad is None) is stop_grad_conv1
    assert net.layers[0].attn.qkv.weight.grad is not None


def test_builds_from_the_registry_with_the_mocov3_small_arch():
    net = MODELS.build(
        dict(type='MaskedMoCoV3ViT', arch='mocov3-small', img_size=32,
             patch_size=16))
    assert isinstance(net, MaskedMoCoV3ViT)
    assert net.embed_dims == 384 and net.num_layers == 12
    assert net.layers[0].attn.num_heads == 12


def test_learned_position_embedding_is_rejected(tiny_arch):
    with pytest.raises(ValueError, match=r'MaskedMoCoV3ViT\.pos_embed_type'):
        MaskedMoCoV3ViT(arch=tiny_arch, img_size=32, patch_size=4,
                        pos_embed_type='learned')
    # 'sincos' given explicitly is fine
    net = MaskedMoCoV3ViT(arch=tiny_arch, img_size=32, patch_size=4,
                          pos_embed_type='sincos')
    assert not net.pos_embed.requires_grad


def test_patch_size_is_required(tiny_arch):
    with pytest.raises(ValueError, match='patch_size'):
        MaskedMoCoV3ViT(arch=tiny_arch, img_size=32)
