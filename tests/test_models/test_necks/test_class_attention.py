"""ClassAttentionBlocks: CaiT class attention by hand, the patch tokens are
a set (order-free), only the CLS token is updated."""
import math

import pytest
import torch
import torch.nn.functional as F
from mmpretrain.registry import MODELS
from torch import Tensor

from mmmoma.models.necks import ClassAttentionBlocks
from mmmoma.models.necks.class_attention import ClassAttentionBlock

DIMS, HEADS = 16, 4


def blocks(num_blocks: int = 2, seed: int = 0) -> ClassAttentionBlocks:
    torch.manual_seed(seed)
    module = ClassAttentionBlocks(DIMS, HEADS, num_blocks=num_blocks)
    module.init_weights()
    with torch.no_grad():  # non-trivial norms and biases
        for name, param in module.named_parameters():
            if 'norm' in name or name.endswith('bias'):
                param.add_(0.1 * torch.randn_like(param))
    return module.eval()


def tokens(batch: int = 3, length: int = 9, seed: int = 1) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 1 + length, DIMS, generator=g)


def block_by_hand(block: ClassAttentionBlock, cls_token: Tensor,
                  patches: Tensor) -> Tensor:
    """cls + Attn(q = LN(cls), k = v = LN([cls, patches])), then the MLP,
    with the heads written out."""
    attn = block.attn
    context = block.norm1(torch.cat([cls_token, patches], dim=1))
    w_q, w_k, w_v = attn.in_proj_weight.chunk(3)
    b_q, b_k, b_v = attn.in_proj_bias.chunk(3)
    q = context[:, :1] @ w_q.t() + b_q  # (B, 1, C)
    k = context @ w_k.t() + b_k  # (B, 1 + L, C)
    v = context @ w_v.t() + b_v
    head_dims = DIMS // HEADS
    heads = []
    for h in range(HEADS):
        part = slice(h * head_dims, (h + 1) * head_dims)
        weights = torch.softmax(
            q[..., part] @ k[..., part].transpose(1, 2) /
            math.sqrt(head_dims), dim=-1)  # (B, 1, 1 + L)
        heads.append(weights @ v[..., part])
    attended = attn.out_proj(torch.cat(heads, dim=-1))
    cls_token = cls_token + attended
    return cls_token + block.mlp(block.norm2(cls_token))


def test_output_is_class_attention_by_hand():
    module = blocks()
    x = tokens()
    cls_token, patches = x[:, :1], x[:, 1:]
    for block in module.blocks:
        cls_token = block_by_hand(block, cls_token, patches)
    expected = F.layer_norm(cls_token[:, 0], (DIMS, ), module.norm.weight,
                            module.norm.bias)
    out = module(x)
    assert out.shape == (3, DIMS)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


def test_patch_order_does_not_matter_but_the_cls_input_does():
    module = blocks()
    x = tokens()
    out = module(x)
    order = torch.randperm(9)
    permuted = torch.cat([x[:, :1], x[:, 1:][:, order]], dim=1)
    torch.testing.assert_close(module(permuted), out, atol=1e-6, rtol=1e-6)
    # (random edits: a constant shift of a token is invisible to its norms)
    new_cls = x.clone()
    new_cls[:, 0] += torch.randn(DIMS)
    assert not torch.allclose(module(new_cls), out, atol=1e-3)
    new_patch = x.clone()
    new_patch[:, 4] += torch.randn(DIMS)  # the patches are attended to
    assert not torch.allclose(module(new_patch), out, atol=1e-3)


def test_each_sample_is_pooled_from_its_own_tokens():
    module = blocks()
    x = tokens()
    out = module(x)
    torch.testing.assert_close(module(x[1:2]), out[1:2])
    edited = x.clone()
    edited[0] += torch.randn(10, DIMS)
    assert torch.equal(module(edited)[1:], out[1:])


def test_every_parameter_gets_a_gradient():
    module = blocks().train()
    module(tokens()).square().sum().backward()
    for name, param in module.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_linear_layers_are_truncated_normal_with_zero_bias():
    torch.manual_seed(0)
    module = ClassAttentionBlocks(64, 4)
    module.init_weights()
    mlp_in = module.blocks[0].mlp[0]
    assert torch.equal(mlp_in.bias, torch.zeros_like(mlp_in.bias))
    assert mlp_in.weight.std().item() == pytest.approx(0.02, rel=0.1)
    assert mlp_in.weight.abs().max().item() <= 2.0  # truncated at ±2
    out_proj = module.blocks[1].attn.out_proj
    assert torch.equal(out_proj.bias, torch.zeros_like(out_proj.bias))
    assert out_proj.weight.std().item() == pytest.approx(0.02, rel=0.1)
    assert len(module.blocks) == 2


def test_builds_from_the_registry():
    module = MODELS.build(
        dict(type='ClassAttentionBlocks', embed_dims=DIMS, num_heads=HEADS,
             num_blocks=1))
    assert isinstance(module, ClassAttentionBlocks)
    assert len(module.blocks) == 1


@pytest.mark.parametrize('num_blocks', [0, -1, 1.5, True])
def test_invalid_block_count_names_the_field(num_blocks):
    with pytest.raises(ValueError, match=r'ClassAttentionBlocks\.num_blocks'):
        ClassAttentionBlocks(DIMS, HEADS, num_blocks=num_blocks)
