"""Per-token projector from student to teacher feature space."""
from typing import Optional

from mmengine.model import BaseModule
from mmpretrain.registry import MODELS
from torch import Tensor, nn


@MODELS.register_module()
class TokenProjector(BaseModule):
    """Project every token of a sequence: one linear layer, or a 2-layer MLP.

    MOMA's projector P (paper §3.2: "a fast and lightweight single linear
    layer, which ... matches the dimension with the teacher").

    Args:
        in_dims (int): student token dimension.
        out_dims (int): teacher token dimension.
        hidden_dims (int, optional): hidden width; None (default) gives the
            paper's single linear layer, an int a Linear-GELU-Linear MLP.
        init_cfg (dict, optional): mmengine init config.
    """

    def __init__(self,
                 in_dims: int,
                 out_dims: int,
                 hidden_dims: Optional[int] = None,
                 init_cfg: Optional[dict] = dict(
                     type='TruncNormal', layer='Linear', std=0.02,
                     bias=0.)) -> None:
        super().__init__(init_cfg=init_cfg)
        for name, value in (('in_dims', in_dims), ('out_dims', out_dims),
                            ('hidden_dims', hidden_dims)):
            if value is not None and (not isinstance(value, int)
                                      or value < 1):
                raise ValueError(f'TokenProjector.{name} must be a positive '
                                 f'int, got {value!r}')
        if hidden_dims is None:
            self.layers = nn.Linear(in_dims, out_dims)
        else:
            self.layers = nn.Sequential(
                nn.Linear(in_dims, hidden_dims), nn.GELU(),
                nn.Linear(hidden_dims, out_dims))

    def forward(self, tokens: Tensor) -> Tensor:
        """(B, L, in_dims) -> (B, L, out_dims)."""
        return self.layers(tokens)
