"""Spherical mean (M-MoCo Eq. 4) and the vMF concentration estimate."""
import math

import pytest
import torch

from mmmoma.models.utils.von_mises_fisher import (spherical_mean,
                                                  vmf_concentration)


def sample_vmf(mean: torch.Tensor, kappa: float, num: int,
               generator: torch.Generator) -> torch.Tensor:
    """Wood (1994)'s rejection sampler for the von Mises–Fisher
    distribution: (num, d) unit vectors around the unit vector ``mean``."""
    torch.manual_seed(generator.initial_seed())  # the Beta draws
    dims = mean.shape[0]
    b = (dims - 1) / (2 * kappa + math.sqrt(4 * kappa**2 + (dims - 1)**2))
    x0 = (1 - b) / (1 + b)
    c = kappa * x0 + (dims - 1) * math.log(1 - x0**2)
    beta = torch.distributions.Beta((dims - 1) / 2, (dims - 1) / 2)
    cosines = []
    while len(cosines) < num:
        z = beta.sample(torch.Size([1])).item()
        w = (1 - (1 + b) * z) / (1 - (1 - b) * z)
        u = torch.rand(1, generator=generator).item()
        if kappa * w + (dims - 1) * math.log(1 - x0 * w) - c >= math.log(u):
            cosines.append(w)
    w = torch.tensor(cosines, dtype=torch.float64).unsqueeze(1)
    # a uniform direction orthogonal to the mean
    v = torch.randn(num, dims, generator=generator, dtype=torch.float64)
    mean = mean.double()
    v = v - (v @ mean).unsqueeze(1) * mean
    v = v / v.norm(dim=1, keepdim=True)
    return (w * mean + (1 - w**2).sqrt() * v).float()


def test_spherical_mean_is_the_normalised_sum_of_unit_keys():
    keys = torch.tensor([[[3.0, 0.0], [0.0, 0.5]]])  # (B=1, m=2, D=2)
    # unit keys (1, 0) and (0, 1): sum (1, 1), normalised (1/√2, 1/√2)
    expected = torch.tensor([[1.0, 1.0]]) / math.sqrt(2.0)
    assert torch.allclose(spherical_mean(keys), expected)
    # not the plain mean direction of the raw keys (3, 0.5)
    raw = keys.sum(1) / keys.sum(1).norm(dim=1, keepdim=True)
    assert not torch.allclose(spherical_mean(keys), raw)


def test_spherical_mean_unit_norm_any_dim_and_single_key():
    torch.manual_seed(0)
    keys = torch.randn(5, 4, 16)
    mean = spherical_mean(keys)
    assert mean.shape == (5, 16)
    assert torch.allclose(mean.norm(dim=-1), torch.ones(5), atol=1e-6)
    assert torch.allclose(spherical_mean(keys.transpose(0, 1), dim=0), mean,
                          atol=1e-6)
    one = keys[:, :1]
    assert torch.allclose(spherical_mean(one),
                          one[:, 0] / one[:, 0].norm(dim=-1, keepdim=True),
                          atol=1e-6)
    with pytest.raises(ValueError, match='feature dimension'):
        spherical_mean(keys, dim=-1)


@pytest.mark.parametrize('kappa,dims', [(20.0, 8), (100.0, 32)])
def test_concentration_of_a_known_vmf_sample_within_10_percent(kappa, dims):
    generator = torch.Generator().manual_seed(1)
    mean = torch.randn(dims, generator=generator)
    mean = mean / mean.norm()
    samples = sample_vmf(mean, kappa, 4000, generator)
    assert torch.allclose(samples.norm(dim=1), torch.ones(4000), atol=1e-5)
    estimate = vmf_concentration(samples).item()
    assert abs(estimate - kappa) < 0.1 * kappa, (estimate, kappa)


def test_concentration_orders_spread_and_batches():
    generator = torch.Generator().manual_seed(2)
    mean = torch.zeros(8)
    mean[0] = 1.0
    tight = sample_vmf(mean, 200.0, 500, generator)
    loose = sample_vmf(mean, 5.0, 500, generator)
    both = vmf_concentration(torch.stack([tight, loose]))  # (2,)
    assert both.shape == (2, )
    assert both[0] > 10 * both[1]
    assert torch.allclose(both[0], vmf_concentration(tight))
    # hand-computed: two orthogonal unit vectors in d=2, R̄ = 1/√2
    pair = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    r = 1 / math.sqrt(2)
    assert vmf_concentration(pair).item() == pytest.approx(
        r * (2 - r**2) / (1 - r**2), rel=1e-5)
    with pytest.raises(ValueError, match='n >= 2'):
        vmf_concentration(torch.randn(1, 8))
