"""MoCo v3's projector / predictor MLP with BatchNorm or LayerNorm.

mmpretrain's ``NonLinearNeck`` builds the same MLP but cannot take a
LayerNorm (it passes ``affine`` to every norm layer); the M-MoCo paper (§3.4)
replaces the heads' BatchNorm by LayerNorm, so the norm is a choice here.
"""
from typing import Optional, Union

from mmengine.model import BaseModule
from mmpretrain.registry import MODELS
from torch import Tensor, nn

#: norm layers a ``NormMLP`` can use (``norm_cfg['type']``).
NORM_TYPES = ('BN', 'SyncBN', 'LN')


def build_norm(norm_type: str, channels: int, affine: bool) -> nn.Module:
    """A 1-D norm layer over (N, C) features.

    Args:
        norm_type (str): one of :data:`NORM_TYPES`.
        channels (int): C.
        affine (bool): learnable scale and shift (``affine`` for BN,
            ``elementwise_affine`` for LN).

    Returns:
        nn.Module: the norm layer.
    """
    if norm_type == 'BN':
        return nn.BatchNorm1d(channels, affine=affine)
    if norm_type == 'SyncBN':
        return nn.SyncBatchNorm(channels, affine=affine)
    if norm_type == 'LN':
        return nn.LayerNorm(channels, elementwise_affine=affine)
    raise ValueError(f'NormMLP.norm_cfg.type must be one of {NORM_TYPES}, '
                     f'got {norm_type!r}')


@MODELS.register_module()
class NormMLP(BaseModule):
    """``num_layers`` fully connected layers, each followed by a norm.

    As MoCo v3's ``_build_mlp``: every hidden layer is fc → norm → ReLU; the
    output layer is fc → norm without affine parameters (``with_last_norm``;
    BYOL's predictor has no output norm). The fcs have no bias. With
    ``norm_cfg=dict(type='BN')`` and the same weights this computes exactly
    what mmpretrain's ``NonLinearNeck(with_bias=False, with_last_bn=True,
    with_last_bn_affine=False, with_avg_pool=False)`` computes; layer names
    ``fc{i}`` / ``norm{i}`` follow it.

    Args:
        in_channels (int): input width.
        hid_channels (int): hidden width (MoCo v3: 4096).
        out_channels (int): output width (MoCo v3: 256).
        num_layers (int): number of fc layers, >= 1 (MoCo v3: projector 3,
            predictor 2).
        norm_cfg (dict): ``dict(type=...)`` with a type of
            :data:`NORM_TYPES`. Defaults to LayerNorm (M-MoCo §3.4).
        with_last_norm (bool): norm (without affine) after the output fc.
            Defaults to True.
        init_cfg (dict, optional): init config; default PyTorch init of
            Linear / norm layers otherwise (as MoCo v3).
    """

    def __init__(self,
                 in_channels: int,
                 hid_channels: int,
                 out_channels: int,
                 num_layers: int = 2,
                 norm_cfg: dict = dict(type='LN'),
                 with_last_norm: bool = True,
                 init_cfg: Optional[Union[dict, list]] = None) -> None:
        super().__init__(init_cfg)
        if isinstance(num_layers, bool) or not isinstance(
                num_layers, int) or num_layers < 1:
            raise ValueError(f'NormMLP.num_layers must be an int >= 1, got '
                             f'{num_layers!r}')
        if not isinstance(norm_cfg, dict) or set(norm_cfg) != {'type'}:
            raise ValueError(
                f'NormMLP.norm_cfg must be dict(type=T) with T one of '
                f'{NORM_TYPES}, got {norm_cfg!r}')
        norm_type = norm_cfg['type']
        if norm_type not in NORM_TYPES:  # also when no norm gets built
            raise ValueError(f'NormMLP.norm_cfg.type must be one of '
                             f'{NORM_TYPES}, got {norm_type!r}')
        self.num_layers = num_layers
        self.with_last_norm = with_last_norm
        self.relu = nn.ReLU(inplace=True)
        for i in range(num_layers):
            last = i == num_layers - 1
            dims_in = in_channels if i == 0 else hid_channels
            dims_out = out_channels if last else hid_channels
            self.add_module(f'fc{i}', nn.Linear(dims_in, dims_out, bias=False))
            if not last:
                self.add_module(f'norm{i}',
                                build_norm(norm_type, dims_out, True))
            elif with_last_norm:
                self.add_module(f'norm{i}',
                                build_norm(norm_type, dims_out, False))

    def forward(self, x: Tensor) -> Tensor:
        """Map features.

        Args:
            x (Tensor): (N, in_channels).

        Returns:
            Tensor: (N, out_channels).
        """
        for i in range(self.num_layers):
            x = getattr(self, f'fc{i}')(x)
            last = i == self.num_layers - 1
            if not last or self.with_last_norm:
                x = getattr(self, f'norm{i}')(x)
            if not last:
                x = self.relu(x)
        return x
