"""A ViT whose masked patches are replaced by a learnable mask token (SimMIM).

MimCo's ViT student: unlike MAE (which drops the masked tokens), SimMIM keeps
the full token sequence and substitutes the patch embedding of every masked
patch by a learned ``mask_token`` before the position embedding is added, so
the encoder still sees each masked patch's position.
"""
from typing import Optional, Tuple

import torch
from mmpretrain.registry import MODELS
from torch import Tensor, nn

from ..masking.indices import split_prefix
from .masked_vit import MaskedViT


@MODELS.register_module()
class SimMIMViT(MaskedViT):
    """``MaskedViT`` with SimMIM's mask-token forward.

    Same arguments and state-dict keys as ``MaskedViT`` plus ``mask_token``
    (1, 1, C), initialised N(0, 0.02²) (truncated) as in SimMIM.

    ``forward(x)`` is the plain ViT forward (``out_type`` applies);
    ``forward(x, mask)`` is the masked forward and returns, for each entry of
    ``out_indices``, the patch tokens as a (B, C, h, w) feature map (the CLS
    token goes through the encoder but is not returned), like mmpretrain's
    ``SimMIMSwinTransformer``. Use ``out_type='featmap'`` so that both paths
    return feature maps.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, self.embed_dims))

    def init_weights(self) -> None:
        """Draw the mask token, then the ``MaskedViT`` initialisation (a
        ``StrictPretrained`` checkpoint, if any, is loaded last)."""
        nn.init.trunc_normal_(self.mask_token, std=0.02)
        super().init_weights()

    def forward(self,
                x: Tensor,
                mask: Optional[Tensor] = None) -> Tuple[Tensor, ...]:
        """Encode images, the masked patches replaced by the mask token.

        Args:
            x (Tensor): (B, 3, H, W) images.
            mask (Tensor, optional): (B, h, w) bool or {0, 1}, True / 1 =
                masked, on the model's patch grid (h = H / patch size). None:
                the plain ViT forward.

        Returns:
            tuple[Tensor]: with a mask, one (B, C, h, w) feature map per
            ``out_indices`` entry (only the last one has the final norm);
            without, the parent's outputs.
        """
        if mask is None:
            return super().forward(x)
        tokens, patch_resolution = self.patch_embed(x)
        batch_size = tokens.shape[0]
        if tuple(mask.shape) != (batch_size, *patch_resolution):
            raise ValueError(
                f'SimMIMViT: mask must have shape (B, h, w) = '
                f'{(batch_size, *patch_resolution)} (the patch grid of the '
                f'input), got {tuple(mask.shape)}')
        weight = mask.reshape(batch_size, -1, 1).to(tokens.dtype)
        tokens = tokens * (1.0 - weight) + self.mask_token.to(
            tokens.dtype) * weight
        tokens = self.add_patch_pos_embed(tokens, patch_resolution)
        outs = self.encode(tokens, patch_resolution)
        height, width = patch_resolution
        feature_maps = []
        for out in outs:
            patches = split_prefix(out, self.num_prefix_tokens)[1]
            feature_maps.append(
                patches.transpose(1, 2).reshape(batch_size, -1, height,
                                                width))
        return tuple(feature_maps)
