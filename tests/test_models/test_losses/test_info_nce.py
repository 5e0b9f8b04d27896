import math

import pytest
import torch

from mmmoma.models.losses import queue_info_nce


def test_matches_hand_computed_value():
    # unit vectors in 2-D, so the dot products are easy cosines
    query = torch.tensor([[1.0, 0.0], [0.0, 2.0]])  # normalised inside
    positive = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    negatives = torch.tensor([[0.0, 1.0], [-1.0, 0.0], [0.6, 0.8]])
    tau = 0.5
    # query 0 = (1, 0): positive cos 1; negatives 0, -1, 0.6
    loss0 = -math.log(math.exp(1 / tau) / (
        math.exp(1 / tau) + math.exp(0) + math.exp(-1 / tau) +
        math.exp(0.6 / tau)))
    # query 1 = (0, 1): positive cos 1/sqrt(2); negatives 1, 0, 0.8
    pos = 1 / math.sqrt(2)
    loss1 = -math.log(math.exp(pos / tau) / (
        math.exp(pos / tau) + math.exp(1 / tau) + math.exp(0) +
        math.exp(0.8 / tau)))
    value = queue_info_nce(query, positive, negatives, tau)
    assert value.item() == pytest.approx((loss0 + loss1) / 2, rel=1e-6)


def test_gradient_flows_to_query_only_through_given_tensors():
    query = torch.randn(4, 8, requires_grad=True)
    positive = torch.randn(4, 8)
    negatives = torch.randn(16, 8)
    queue_info_nce(query, positive, negatives, 0.2).backward()
    assert query.grad is not None and query.grad.abs().sum() > 0
    # a better-aligned positive lowers the loss
    aligned = queue_info_nce(positive, positive, negatives, 0.2)
    assert aligned < queue_info_nce(-positive, positive, negatives, 0.2)


@pytest.mark.parametrize('tau', [0.0, -0.1])
def test_temperature_must_be_positive(tau):
    with pytest.raises(ValueError, match='temperature'):
        queue_info_nce(torch.randn(2, 3), torch.randn(2, 3),
                       torch.randn(4, 3), tau)
