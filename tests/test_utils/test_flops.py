"""mmmoma.utils.flops: attention is counted on the CPU, counts are exact."""
import importlib

import pytest
import torch
import torch.nn.functional as F
from mmengine.model import BaseModel
from mmengine.optim import OptimWrapper
from mmpretrain.models import VisionTransformer
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, flop_registry

import mmmoma.utils.flops as flops_module
from mmmoma.utils.flops import (FlopBreakdown, attention_backward_flops,
                                attention_forward_flops, count_flop_breakdown,
                                count_flops, make_flop_counter,
                                register_attention_flop_formulas,
                                train_step_flop_breakdown, train_step_flops)

aten = torch.ops.aten
B, H, SQ, SK, D = 2, 3, 5, 7, 8


def qkv(requires_grad: bool = False):
    torch.manual_seed(0)
    return (torch.randn(B, H, SQ, D, requires_grad=requires_grad),
            torch.randn(B, H, SK, D, requires_grad=requires_grad),
            torch.randn(B, H, SK, D, requires_grad=requires_grad))


def test_plain_flop_counter_counts_cpu_sdpa_forward():
    query, key, value = qkv()
    with FlopCounterMode(display=False) as counter:
        F.scaled_dot_product_attention(query, key, value)
    assert counter.get_total_flops() == 4 * B * H * SQ * SK * D
    assert aten._scaled_dot_product_flash_attention_for_cpu in \
        counter.get_flop_counts()['Global']


def test_cpu_sdpa_backward_is_twice_forward():
    query, key, value = qkv(requires_grad=True)
    with FlopCounterMode(display=False) as counter:
        F.scaled_dot_product_attention(query, key, value).sum().backward()
    per_op = counter.get_flop_counts()['Global']
    forward = per_op[aten._scaled_dot_product_flash_attention_for_cpu]
    backward = per_op[
        aten._scaled_dot_product_flash_attention_for_cpu_backward]
    assert forward == 4 * B * H * SQ * SK * D
    assert backward == 2 * forward
    assert counter.get_total_flops() == 3 * forward


def test_breakdown_separates_attention_from_projections():
    """Attention forward / backward are reported apart from the matmuls
    around them (here an output projection); the total keeps both."""
    query, key, value = qkv(requires_grad=True)
    projection = nn.Linear(D, D, bias=False)
    breakdown = count_flop_breakdown(lambda: projection(
        F.scaled_dot_product_attention(query, key, value)).sum().backward())
    attention = 4 * B * H * SQ * SK * D
    rows = B * H * SQ
    # projection: forward + weight gradient + input gradient
    assert breakdown == FlopBreakdown(
        total=3 * attention + 3 * 2 * rows * D * D,
        attention_forward=attention,
        attention_backward=2 * attention)
    assert breakdown.attention == 3 * attention
    # no backward: forward only; nothing but attention: total = attention
    with torch.no_grad():
        forward_only = count_flop_breakdown(F.scaled_dot_product_attention,
                                            query, key, value)
    assert forward_only == (attention, attention, 0)


def test_breakdown_covers_every_sdpa_kernel():
    """The GPU kernels are classified too (the flash / efficient kernels
    cannot run here, so the op lists are checked)."""
    assert set(flops_module.ATTENTION_FORWARD_OPS) == {
        aten._scaled_dot_product_flash_attention_for_cpu,
        aten._scaled_dot_product_flash_attention,
        aten._scaled_dot_product_efficient_attention,
        aten._scaled_dot_product_cudnn_attention,
    }
    assert set(flops_module.ATTENTION_BACKWARD_OPS) == {
        aten._scaled_dot_product_flash_attention_for_cpu_backward,
        *flops_module.GPU_ATTENTION_BACKWARD_OPS,
    }
    registry = make_flop_counter().flop_registry
    for op in (flops_module.ATTENTION_FORWARD_OPS +
               flops_module.ATTENTION_BACKWARD_OPS):
        assert op in registry, op


def test_sdpa_math_fallback_counts_the_same():
    """dropout_p > 0 takes the math path (bmm): same forward count."""
    query, key, value = qkv()
    flops = count_flops(
        lambda: F.scaled_dot_product_attention(
            query, key, value, dropout_p=0.5))
    assert flops == 4 * B * H * SQ * SK * D


def test_registration_is_idempotent():
    formula = flop_registry[aten._scaled_dot_product_flash_attention_for_cpu]
    register_attention_flop_formulas()
    importlib.reload(flops_module)
    assert flop_registry[
        aten._scaled_dot_product_flash_attention_for_cpu] is formula


def test_gpu_backward_formulas_match_cpu_convention():
    """count_flops counts every attention backward kernel as 2x forward
    (torch's own GPU formula adds the recomputed scores: 2.5x)."""
    registry = make_flop_counter().flop_registry
    shapes = dict(
        grad=torch.Size((B, H, SQ, D)),
        query=torch.Size((B, H, SQ, D)),
        key=torch.Size((B, H, SK, D)),
        value=torch.Size((B, H, SK, D)))
    forward = 4 * B * H * SQ * SK * D
    for op in flops_module.GPU_ATTENTION_BACKWARD_OPS:
        assert registry[op](*shapes.values()) == 2 * forward, op
    assert flop_registry[aten._scaled_dot_product_flash_attention_backward](
        *shapes.values()) == 5 * forward // 2


def test_attention_formulas_general_shapes():
    # grouped-query attention (4 query heads, 2 kv heads), Dv != D
    assert attention_forward_flops((2, 4, 5, 8), (2, 2, 7, 8),
                                   (2, 2, 7, 16)) == 2 * 2 * 4 * 5 * 7 * 24
    assert attention_backward_flops((2, 4, 5, 16), (2, 4, 5, 8),
                                    (2, 2, 7, 8), (2, 2, 7, 16)) == \
        2 * attention_forward_flops((2, 4, 5, 8), (2, 2, 7, 8), (2, 2, 7, 16))
    with pytest.raises(ValueError, match='incompatible'):
        attention_forward_flops((2, 4, 5, 8), (2, 4, 7, 6), (2, 4, 7, 8))
    with pytest.raises(ValueError, match='4-D'):
        attention_forward_flops((4, 5, 8), (4, 7, 8), (4, 7, 8))
    with pytest.raises(ValueError, match='grad_out'):
        attention_backward_flops((2, 4, 5, 9), (2, 4, 5, 8), (2, 4, 7, 8),
                                 (2, 4, 7, 8))


def test_linear_forward_and_backward():
    batch, in_features, out_features = 3, 5, 7
    linear = nn.Linear(in_features, out_features)
    inputs = torch.randn(batch, in_features)
    forward = 2 * batch * in_features * out_features
    assert count_flops(linear, inputs) == forward
    # backward: weight gradient only (the input needs no gradient)
    assert count_flops(lambda: linear(inputs).sum().backward()) == 2 * forward
    # with an input gradient too: 3x forward
    inputs.requires_grad_(True)
    assert count_flops(lambda: linear(inputs).sum().backward()) == 3 * forward


def vit_forward_flops(embed_dims, num_layers, mlp_dims, img_size, patch_size):
    """Matmul + attention FLOPs of one image through a ViT (with CLS)."""
    num_patches = (img_size // patch_size)**2
    tokens = num_patches + 1
    patch_embed = 2 * num_patches * 3 * patch_size**2 * embed_dims
    per_layer = (2 * tokens * embed_dims * 3 * embed_dims  # qkv
                 + 4 * tokens * tokens * embed_dims  # attention, all heads
                 + 2 * tokens * embed_dims * embed_dims  # proj
                 + 2 * 2 * tokens * embed_dims * mlp_dims)  # fc1 + fc2
    return patch_embed + num_layers * per_layer


def test_vit_forward_matches_analytic_count(tiny_arch):
    vit = VisionTransformer(arch=tiny_arch, img_size=32, patch_size=4)
    vit.eval()  # mmpretrain's ViT.train() returns None: no chaining
    with torch.no_grad():
        flops = count_flops(vit, torch.zeros(2, 3, 32, 32))
    assert flops == 2 * vit_forward_flops(
        tiny_arch['embed_dims'], tiny_arch['num_layers'],
        tiny_arch['feedforward_channels'], 32, 4)
    with torch.no_grad():
        breakdown = count_flop_breakdown(vit, torch.zeros(2, 3, 32, 32))
    assert breakdown.total == flops
    # Q·Kᵀ and P·V of 65 tokens, all heads, every layer, 2 images
    assert breakdown.attention == breakdown.attention_forward == \
        2 * tiny_arch['num_layers'] * 4 * 65 * 65 * tiny_arch['embed_dims']


class TwoLayerModel(BaseModel):
    """Tiny MMEngine model: inputs (B, 5) -> 7 -> 3, squared-output loss."""

    def __init__(self):
        super().__init__()
        self.first = nn.Linear(5, 7)
        self.second = nn.Linear(7, 3)

    def forward(self, inputs, data_samples=None, mode='loss'):
        return dict(loss=self.second(self.first(inputs)).pow(2).mean())


def test_train_step_flops_with_and_without_optim_wrapper():
    batch = 4
    data = dict(inputs=torch.randn(batch, 5))
    first, second = 2 * batch * 5 * 7, 2 * batch * 7 * 3
    # first layer: forward + weight grad; second: forward + weight + input
    expected = 2 * first + 3 * second
    model = TwoLayerModel()
    assert train_step_flops(model, data) == expected
    assert train_step_flop_breakdown(model, data) == (expected, 0, 0)
    weights_before = model.first.weight.detach().clone()
    optim_wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
    assert train_step_flops(model, data, optim_wrapper) == expected
    assert not torch.equal(weights_before, model.first.weight)  # a real step


class FrozenTeacherModel(BaseModel):
    """A trained linear layer plus a frozen one run under ``no_grad`` (as
    ``FrozenTeacher`` runs MOMA's teachers)."""

    def __init__(self):
        super().__init__()
        self.student = nn.Linear(5, 7)
        self.teacher = nn.Linear(5, 7).requires_grad_(False)

    def forward(self, inputs, data_samples=None, mode='loss'):
        with torch.no_grad():
            target = self.teacher(inputs)
        return dict(loss=(self.student(inputs) - target).pow(2).mean())


def test_no_grad_forward_is_counted():
    """FlopCounterMode counts at the dispatcher, below autograd: ops run
    under ``torch.no_grad()`` are counted, and they add no backward."""
    linear = nn.Linear(5, 7)
    inputs = torch.randn(4, 5)
    with torch.no_grad():
        no_grad_flops = count_flops(linear, inputs)
    assert no_grad_flops == count_flops(linear, inputs) == 2 * 4 * 5 * 7

    batch = 4
    data = dict(inputs=torch.randn(batch, 5))
    layer = 2 * batch * 5 * 7
    # student: forward + weight grad; teacher: forward only
    assert train_step_flops(FrozenTeacherModel(), data) == 2 * layer + layer
