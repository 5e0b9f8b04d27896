"""EMA of networks: ema_update_, the cosine momentum schedule, checks."""
import math

import pytest
import torch
from torch import nn

from mmmoma.models.utils import (check_unit_interval, cosine_momentum,
                                 ema_update_)


def pair():
    torch.manual_seed(0)
    average = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    source = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    source(torch.randn(8, 3))  # source BN statistics move
    average.requires_grad_(False)
    return average, source


def state(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


@pytest.mark.parametrize('momentum', [0.0, 0.3, 0.99, 1.0])
def test_parameters_are_averaged_and_buffers_copied(momentum):
    average, source = pair()
    old, new = state(average), state(source)
    assert not torch.equal(old['0.weight'], new['0.weight'])
    assert not torch.equal(old['1.running_mean'], new['1.running_mean'])
    ema_update_(average, source, momentum)
    for name, param in average.named_parameters():
        torch.testing.assert_close(
            param, momentum * old[name] + (1 - momentum) * new[name],
            atol=1e-7, rtol=1e-6)
        assert not param.requires_grad
    for name, buffer in average.named_buffers():
        assert torch.equal(buffer, new[name]), name
    for name, value in source.state_dict().items():  # source untouched
        assert torch.equal(value, new[name]), name


def test_momentum_0_copies_and_1_keeps_exactly():
    average, source = pair()
    old = state(average)
    ema_update_(average, source, 1.0)
    for name, param in average.named_parameters():
        assert torch.equal(param, old[name])
    ema_update_(average, source, 0.0)
    for name, value in source.state_dict().items():
        assert torch.equal(average.state_dict()[name], value)


def test_update_is_not_recorded_by_autograd():
    average, source = pair()
    average.requires_grad_(True)
    ema_update_(average, source, 0.5)
    assert all(p.grad_fn is None for p in average.parameters())
    assert all(p.grad is None for p in source.parameters())


@pytest.mark.parametrize('momentum', [-0.1, 1.01, '0.9', None, True])
def test_momentum_outside_unit_interval_raises(momentum):
    average, source = pair()
    with pytest.raises(ValueError, match=r'momentum must be a float in '
                       r'\[0, 1\]'):
        ema_update_(average, source, momentum)


def test_check_unit_interval_names_the_field():
    assert check_unit_interval(1, 'X.m') == 1.0
    assert isinstance(check_unit_interval(1, 'X.m'), float)
    assert check_unit_interval(0.25, 'X.m') == 0.25
    with pytest.raises(ValueError, match=r'MimCo.base_momentum .* got 2'):
        check_unit_interval(2, 'MimCo.base_momentum')


def test_cosine_momentum_schedule():
    # MoBY / MoCo v3: 1 - (1 - 0.99) (1 + cos(pi t)) / 2
    for progress in (0.0, 0.1, 0.25, 0.5, 0.8, 1.0):
        want = 1 - (1 - 0.99) * (1 + math.cos(math.pi * progress)) / 2
        assert cosine_momentum(0.99, 1.0, progress) == pytest.approx(want)
    assert cosine_momentum(0.99, 1.0, 0.0) == pytest.approx(0.99)
    assert cosine_momentum(0.99, 1.0, 1.0) == pytest.approx(1.0)
    # SdAE's 0.96 -> 0.99, monotone
    values = [cosine_momentum(0.96, 0.99, t / 10) for t in range(11)]
    assert values[0] == pytest.approx(0.96)
    assert values[5] == pytest.approx(0.975)
    assert values[-1] == pytest.approx(0.99)
    assert values == sorted(values)
