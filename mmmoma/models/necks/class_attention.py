"""Class-attention blocks between a ViT and its projector (M-MoCo Table 3).

The M-MoCo paper (§3.4, "Extra cross-attention block") inserts two
cross-attention blocks between the backbone and the projector, following
ExtreMA (Wu et al., 2022) — but keeps the backbone's CLS token, so the
backbone stays a plain ViT. Each block is CaiT's class attention (Touvron et
al., 2021): only the CLS token is updated, attending to itself and all patch
tokens::

    u   = [cls, patches]
    cls = cls + Attn(q = LN(cls), k = v = LN(u))
    cls = cls + MLP(LN(cls))

and a final LayerNorm follows the last block.
"""
from typing import Optional, Union

import torch
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS
from torch import Tensor, nn


class ClassAttentionBlock(nn.Module):
    """One CaiT class-attention block (pre-norm, residual).

    Args:
        embed_dims (int): token width C.
        num_heads (int): attention heads.
        mlp_ratio (float): MLP hidden width / C.
    """

    def __init__(self, embed_dims: int, num_heads: int,
                 mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(embed_dims)
        self.attn = nn.MultiheadAttention(
            embed_dims, num_heads, batch_first=True)
        self.norm2 = nn.LayerNorm(embed_dims)
        hidden = int(embed_dims * mlp_ratio)
        self.mlp = nn.Sequential(
            nn.Linear(embed_dims, hidden), nn.GELU(),
            nn.Linear(hidden, embed_dims))

    def forward(self, cls_token: Tensor, tokens: Tensor) -> Tensor:
        """Update the CLS token.

        Args:
            cls_token (Tensor): (B, 1, C) the current CLS token.
            tokens (Tensor): (B, L, C) the patch tokens (not updated).

        Returns:
            Tensor: (B, 1, C) the new CLS token.
        """
        context = self.norm1(torch.cat([cls_token, tokens], dim=1))
        query = context[:, :1]
        cls_token = cls_token + self.attn(
            query, context, context, need_weights=False)[0]
        return cls_token + self.mlp(self.norm2(cls_token))


@MODELS.register_module()
class ClassAttentionBlocks(BaseModule):
    """``num_blocks`` class-attention blocks pooling ViT tokens into one.

    Args:
        embed_dims (int): token width C (the backbone's).
        num_heads (int): attention heads.
        num_blocks (int): number of blocks. Defaults to 2 (the paper).
        mlp_ratio (float): MLP hidden width / C. Defaults to 4.
        init_cfg (dict, optional): init config.
    """

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 num_blocks: int = 2,
                 mlp_ratio: float = 4.0,
                 init_cfg: Optional[Union[dict, list]] = dict(
                     type='TruncNormal', layer='Linear', std=0.02,
                     bias=0.0)) -> None:
        super().__init__(init_cfg)
        if isinstance(num_blocks, bool) or not isinstance(
                num_blocks, int) or num_blocks < 1:
            raise ValueError(f'ClassAttentionBlocks.num_blocks must be an '
                             f'int >= 1, got {num_blocks!r}')
        self.blocks = nn.ModuleList(
            ClassAttentionBlock(embed_dims, num_heads, mlp_ratio)
            for _ in range(num_blocks))
        self.norm = nn.LayerNorm(embed_dims)

    def forward(self, tokens: Tensor) -> Tensor:
        """Pool a token sequence into its updated CLS token.

        Args:
            tokens (Tensor): (B, 1 + L, C) backbone output, CLS first.

        Returns:
            Tensor: (B, C).
        """
        cls_token, patches = tokens[:, :1], tokens[:, 1:]
        for block in self.blocks:
            cls_token = block(cls_token, patches)
        return self.norm(cls_token)[:, 0]
