"""A 2-layer convolutional projector / predictor on a feature map (MimCo)."""
from typing import Optional

from mmcv.cnn import build_norm_layer
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS
from torch import Tensor, nn


@MODELS.register_module()
class ConvProjector(BaseModule):
    """conv(k) → norm → ReLU → conv(k), applied to a (B, C, h, w) map.

    MimCo's patch-level projector p₁ᵖ, predictor p₂ᵖ and momentum projector
    p₃ᵖ ("2 layer convolution", §3.2). The paper gives neither kernel size
    nor norm; the defaults are MoBY's 2-layer MLP (Linear → BN → ReLU →
    Linear, which MimCo says it follows) applied to every patch: 1×1
    convolutions with BatchNorm over batch and positions. A kernel of 1 also
    keeps each output patch a function of its own input patch only, so the
    teacher's key at a masked position carries no information from its
    neighbours. ``kernel_size`` 3, 5, ... (same padding) is available.

    Args:
        in_channels (int): C_in of the input map.
        hidden_channels (int): channels after the first convolution.
        out_channels (int): C_out.
        kernel_size (int): odd kernel size of both convolutions. Defaults to
            1.
        norm_cfg (dict): norm after the first convolution (mmcv
            ``build_norm_layer``: ``BN``, ``SyncBN``, ``GN``, ...). Defaults
            to ``dict(type='BN')``.
        init_cfg (dict, optional): mmengine init config.
    """

    def __init__(self,
                 in_channels: int,
                 hidden_channels: int,
                 out_channels: int,
                 kernel_size: int = 1,
                 norm_cfg: dict = dict(type='BN'),
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        for name, value in (('in_channels', in_channels),
                            ('hidden_channels', hidden_channels),
                            ('out_channels', out_channels),
                            ('kernel_size', kernel_size)):
            if isinstance(value, bool) or not isinstance(value,
                                                         int) or value < 1:
                raise ValueError(f'ConvProjector.{name} must be a positive '
                                 f'int, got {value!r}')
        if kernel_size % 2 == 0:
            raise ValueError('ConvProjector.kernel_size must be odd (same '
                             f'padding keeps the patch grid), got '
                             f'{kernel_size}')
        padding = kernel_size // 2
        self.layers = nn.Sequential(
            nn.Conv2d(in_channels, hidden_channels, kernel_size,
                      padding=padding, bias=False),
            build_norm_layer(norm_cfg, hidden_channels)[1],
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden_channels, out_channels, kernel_size,
                      padding=padding))

    def forward(self, feature_map: Tensor) -> Tensor:
        """(B, in_channels, h, w) -> (B, out_channels, h, w)."""
        return self.layers(feature_map)
