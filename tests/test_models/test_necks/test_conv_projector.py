"""ConvProjector: MoBY's MLP on every patch (kernel 1), odd kernels, errors."""
import pytest
import torch
import torch.nn.functional as F
from mmpretrain.registry import MODELS
from torch import Tensor

from mmmoma.models.necks import ConvProjector


def build(**kwargs) -> ConvProjector:
    torch.manual_seed(0)
    cfg = dict(type='ConvProjector', in_channels=6, hidden_channels=10,
               out_channels=4)
    cfg.update(kwargs)
    projector = MODELS.build(cfg)
    projector.init_weights()
    bn = projector.layers[1]
    if not isinstance(bn, torch.nn.BatchNorm2d):
        return projector
    with torch.no_grad():  # non-trivial BN affine map and statistics
        bn.weight.uniform_(0.5, 2.0)
        bn.bias.normal_()
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.5, 2.0)
    return projector


def per_patch_mlp(projector: ConvProjector, x: Tensor,
                  training: bool) -> Tensor:
    """Linear (no bias) → BN over batch and positions → ReLU → Linear, on
    every patch vector, written out (float64)."""
    conv1, bn, _, conv2 = projector.layers
    batch, channels, height, width = x.shape
    patches = x.double().permute(0, 2, 3, 1).reshape(-1, channels)  # (N, C)
    hidden = patches @ conv1.weight.double()[:, :, 0, 0].t()
    if training:  # batch statistics, biased variance
        mean = hidden.mean(0)
        var = hidden.var(0, unbiased=False)
    else:
        mean, var = bn.running_mean.double(), bn.running_var.double()
    hidden = (hidden - mean) / torch.sqrt(var + bn.eps)
    hidden = hidden * bn.weight.double() + bn.bias.double()
    hidden = hidden.clamp(min=0)
    out = hidden @ conv2.weight.double()[:, :, 0, 0].t() + conv2.bias.double()
    return out.reshape(batch, height, width, -1).permute(0, 3, 1, 2)


@pytest.mark.parametrize('training', [True, False])
def test_kernel_1_is_moby_mlp_on_every_patch(training):
    projector = build()
    assert projector.layers[0].bias is None  # BN follows
    projector.train(training)
    x = torch.randn(3, 6, 5, 4)
    out = projector(x)
    assert out.shape == (3, 4, 5, 4)
    torch.testing.assert_close(out.double(),
                               per_patch_mlp(projector, x, training),
                               atol=1e-5, rtol=1e-5)


def test_kernel_1_keeps_patches_apart_kernel_3_mixes_neighbours():
    x = torch.randn(2, 6, 7, 7)
    changed = x.clone()
    changed[0, :, 3, 3] += 2.0
    one = build().eval()
    diff = (one(changed) - one(x)).abs().sum(1)  # (B, h, w)
    assert diff[0, 3, 3] > 0
    diff[0, 3, 3] = 0
    assert torch.all(diff == 0)

    three = build(kernel_size=3).eval()
    assert three.layers[0].padding == (1, 1)
    out = three(x)
    assert out.shape == (2, 4, 7, 7)  # same padding keeps the grid
    diff = (three(changed) - out).abs().sum(1)
    # two 3 x 3 convolutions: the change reaches 2 cells away, no further
    assert diff[0, 1, 1] > 0 and diff[0, 5, 5] > 0
    assert diff[0, 0].sum() == 0 and diff[0, :, 6].sum() == 0
    assert diff[1].sum() == 0
    # kernel 3 computes the documented convolutions
    conv1, bn, _, conv2 = three.layers
    hidden = F.relu(bn(F.conv2d(x, conv1.weight, padding=1)))
    torch.testing.assert_close(
        out, F.conv2d(hidden, conv2.weight, conv2.bias, padding=1))


def test_group_norm_config():
    projector = build(norm_cfg=dict(type='GN', num_groups=2))
    assert isinstance(projector.layers[1], torch.nn.GroupNorm)
    assert projector(torch.randn(1, 6, 3, 3)).shape == (1, 4, 3, 3)


@pytest.mark.parametrize('kwargs,match', [
    (dict(kernel_size=2), 'ConvProjector.kernel_size must be odd'),
    (dict(kernel_size=0), 'ConvProjector.kernel_size'),
    (dict(in_channels=0), 'ConvProjector.in_channels'),
    (dict(hidden_channels=1.5), 'ConvProjector.hidden_channels'),
    (dict(out_channels=True), 'ConvProjector.out_channels'),
])
def test_bad_arguments_raise_naming_them(kwargs, match):
    with pytest.raises(ValueError, match=match):
        build(**kwargs)
