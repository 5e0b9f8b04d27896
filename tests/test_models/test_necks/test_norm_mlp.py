"""NormMLP: MoCo v3's head MLP with BN / SyncBN / LN; parity with
mmpretrain's NonLinearNeck, LN heads free of BatchNorm."""
import pytest
import torch
from mmpretrain.models.necks import NonLinearNeck
from mmpretrain.registry import MODELS
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from mmmoma.models.necks import NormMLP


def norm_mlp(num_layers: int = 3, norm: str = 'LN', **kwargs) -> NormMLP:
    return NormMLP(16, 32, 8, num_layers=num_layers,
                   norm_cfg=dict(type=norm), **kwargs)


def randomise_norms(module: nn.Module, seed: int = 0) -> None:
    """Move every affine norm parameter away from (1, 0), so that a mix-up
    of layers shows in the outputs."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in module.named_parameters():
            if 'norm' in name or 'bn' in name:
                param.copy_(torch.rand(param.shape, generator=g) + 0.5)


def copy_into_neck(mlp: NormMLP, neck: NonLinearNeck) -> None:
    """NormMLP ``fc{i}`` / ``norm{i}`` → NonLinearNeck ``fc{i}`` / ``bn{i}``
    (strict: every key of the neck is filled)."""
    state = {k.replace('norm', 'bn'): v for k, v in mlp.state_dict().items()}
    neck.load_state_dict(state, strict=True)


@pytest.mark.parametrize('num_layers', [2, 3])
def test_default_is_layer_norm_without_any_batch_norm(num_layers):
    mlp = NormMLP(16, 32, 8, num_layers=num_layers)
    assert not any(isinstance(m, _BatchNorm) for m in mlp.modules())
    norms = [getattr(mlp, f'norm{i}') for i in range(num_layers)]
    assert all(isinstance(n, nn.LayerNorm) for n in norms)
    for i in range(num_layers):
        assert getattr(mlp, f'fc{i}').bias is None  # MoCo v3: no fc bias


@pytest.mark.parametrize('norm', ['LN', 'BN', 'SyncBN'])
def test_only_the_output_norm_has_no_affine_parameters(norm):
    mlp = norm_mlp(3, norm)
    names = {name for name, _ in mlp.named_parameters()}
    assert {'norm0.weight', 'norm0.bias', 'norm1.weight',
            'norm1.bias'} <= names
    assert not any(name.startswith('norm2') for name in names)
    expected = {'LN': nn.LayerNorm, 'BN': nn.BatchNorm1d,
                'SyncBN': nn.SyncBatchNorm}[norm]
    assert all(
        type(getattr(mlp, f'norm{i}')) is expected for i in range(3))


def test_layer_norm_output_is_standardised_per_sample():
    torch.manual_seed(0)
    mlp = norm_mlp(3, 'LN')
    randomise_norms(mlp)
    out = mlp(torch.randn(5, 16))
    assert out.shape == (5, 8)
    torch.testing.assert_close(out.mean(dim=1), torch.zeros(5), atol=1e-5,
                               rtol=0)
    torch.testing.assert_close(
        out.var(dim=1, unbiased=False), torch.ones(5), atol=1e-3, rtol=0)
    # a sample's output does not depend on the rest of the batch
    x = torch.randn(4, 16)
    torch.testing.assert_close(mlp(x)[:1], mlp(x[:1]))


@pytest.mark.parametrize('norm', ['BN', 'SyncBN'])
@pytest.mark.parametrize('num_layers', [2, 3])
def test_batch_norm_variant_equals_non_linear_neck(norm, num_layers):
    torch.manual_seed(0)
    mlp = norm_mlp(num_layers, norm)
    randomise_norms(mlp)
    neck = NonLinearNeck(
        16, 32, 8, num_layers=num_layers, with_bias=False,
        with_last_bn=True, with_last_bn_affine=False, with_last_bias=False,
        with_avg_pool=False, norm_cfg=dict(type='SyncBN'))
    copy_into_neck(mlp, neck)
    mlp.train()
    neck.train()
    x = torch.randn(6, 16)
    torch.testing.assert_close(mlp(x), neck((x, ))[0], atol=1e-6, rtol=1e-6)
    # the running statistics moved the same way: eval mode agrees too
    mlp.eval()
    neck.eval()
    torch.testing.assert_close(mlp(x), neck((x, ))[0], atol=1e-6, rtol=1e-6)


def test_without_last_norm_the_output_is_the_last_fc():
    torch.manual_seed(0)
    mlp = norm_mlp(2, 'LN', with_last_norm=False)
    assert not hasattr(mlp, 'norm1')
    x = torch.randn(3, 16)
    hidden = torch.relu(mlp.norm0(mlp.fc0(x)))
    torch.testing.assert_close(mlp(x), mlp.fc1(hidden))


def test_builds_from_the_registry():
    mlp = MODELS.build(
        dict(type='NormMLP', in_channels=16, hid_channels=32,
             out_channels=8, num_layers=2, norm_cfg=dict(type='BN')))
    assert isinstance(mlp, NormMLP) and isinstance(mlp.norm0, nn.BatchNorm1d)


@pytest.mark.parametrize('kwargs', [
    dict(norm_cfg=dict(type='GN')),
    dict(norm_cfg=dict(type='BN1d')),
    # a 1-layer MLP without an output norm builds no norm, but still checks
    dict(norm_cfg=dict(type='IN'), num_layers=1, with_last_norm=False),
])
def test_invalid_norm_type_names_the_field(kwargs):
    with pytest.raises(ValueError, match=r'NormMLP\.norm_cfg'):
        NormMLP(16, 32, 8, **kwargs)


@pytest.mark.parametrize('norm_cfg', [dict(type='BN', eps=1e-3), 'LN', None])
def test_malformed_norm_cfg_names_the_field(norm_cfg):
    with pytest.raises(ValueError, match=r'NormMLP\.norm_cfg'):
        NormMLP(16, 32, 8, norm_cfg=norm_cfg)


@pytest.mark.parametrize('num_layers', [0, -1, 2.0, True])
def test_invalid_num_layers_names_the_field(num_layers):
    with pytest.raises(ValueError, match=r'NormMLP\.num_layers'):
        NormMLP(16, 32, 8, num_layers=num_layers)
