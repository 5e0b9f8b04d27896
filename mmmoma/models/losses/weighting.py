"""Combining several loss terms with fixed or learned weights."""
from typing import Dict, Sequence

import torch
from mmpretrain.registry import MODELS
from torch import Tensor, nn


@MODELS.register_module()
class UncertaintyWeighting(nn.Module):
    """Homoscedastic-uncertainty weighting (Kendall et al., CVPR 2018).

    ``total = sum_t exp(-s_t) * L_t + s_t``, with one learnable log-variance
    ``s_t`` per term (initialised to 0, i.e. weight 1). A term whose loss is
    large relative to the others is down-weighted; the ``+ s_t`` regulariser
    keeps the weights from collapsing to 0.

    Args:
        names (Sequence[str]): names of the loss terms.
    """

    def __init__(self, names: Sequence[str]) -> None:
        super().__init__()
        if not names:
            raise ValueError('UncertaintyWeighting needs at least one name')
        self.names = list(names)
        self.log_vars = nn.Parameter(torch.zeros(len(self.names)))

    def weights(self) -> Dict[str, Tensor]:
        """Current weight ``exp(-s_t)`` of every term (detached)."""
        return {
            name: torch.exp(-log_var.detach())
            for name, log_var in zip(self.names, self.log_vars)
        }

    def forward(self, losses: Dict[str, Tensor]) -> Tensor:
        """Weighted sum of ``losses`` (a dict keyed by ``names``)."""
        return sum(
            torch.exp(-log_var) * losses[name] + log_var
            for name, log_var in zip(self.names, self.log_vars))
