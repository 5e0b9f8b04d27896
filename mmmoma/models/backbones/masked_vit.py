"""A Vision Transformer that encodes any per-sample subset of its patch tokens.

This is the one place where masked / grouped token encoding lives; MOMA,
SdAE, MimCo and M-MoCo all build on it. The stages are explicit::

    embed_patches  -> (B, N, C)        patch tokens + their position embedding
    gather_tokens  -> (B, L, C)        the tokens to encode (patch-space ids)
    fold groups    -> (B*G, L/G, C)    G disjoint groups folded into the batch
    add prefix     -> (B*G, P+L/G, C)  each group gets its own CLS token
    blocks, norm   -> (B*G, P+L/G, C)

Folding groups into the batch dimension restricts attention to each group
without an attention mask, so mmpretrain's ``MultiheadAttention`` keeps using
``F.scaled_dot_product_attention`` (flash / memory-efficient kernels on GPU).
"""
from typing import Optional, Sequence, Tuple

import torch
from mmpretrain.models.backbones import VisionTransformer
from mmpretrain.models.utils import (build_2d_sincos_position_embedding,
                                     resize_pos_embed)
from mmpretrain.registry import MODELS
from torch import Tensor

from ..masking.indices import gather_tokens


@MODELS.register_module()
class MaskedViT(VisionTransformer):
    """mmpretrain ``VisionTransformer`` with masked and grouped forward paths.

    Same constructor arguments and the same state-dict keys as mmpretrain's
    ``VisionTransformer`` (so its checkpoints, and the converted MAE / MoCo v3
    releases, load unchanged). ``forward(x)`` without token ids is exactly the
    parent's forward, honouring ``out_type`` and ``out_indices``.

    One extra argument, ``pos_embed_type``: ``'learned'`` (default, the
    parent's learnable position embedding) or ``'sincos'``, a fixed 2-D
    sin-cos embedding that is not trained, as in MAE (mmpretrain's
    ``MAEViT``) and SdAE; a ``StrictPretrained`` init still overwrites it with
    the checkpoint's values. All other arguments: see ``VisionTransformer``.

    With ``token_ids`` (and optionally ``num_groups``) the encoder sees only
    the selected patch tokens. Outputs are then raw token sequences,
    ``(B * G, P + L / G, C)`` with ``P = num_extra_tokens`` prefix tokens
    first (the CLS token when ``with_cls_token``), groups folded into the
    batch dimension sample-major (row ``b * G + g`` is group ``g`` of sample
    ``b``). Layers in ``out_indices`` are returned; like the parent, only the
    last layer's output has the final norm (``ln1``) applied.
    """

    POS_EMBED_TYPES = ('learned', 'sincos')

    def __init__(self, *args, pos_embed_type: str = 'learned',
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if pos_embed_type not in self.POS_EMBED_TYPES:
            raise ValueError(f'MaskedViT.pos_embed_type must be one of '
                             f'{self.POS_EMBED_TYPES}, got {pos_embed_type!r}')
        self.pos_embed_type = pos_embed_type
        if pos_embed_type == 'sincos':
            self.pos_embed.requires_grad = False

    def init_weights(self) -> None:
        """Random initialisation, the fixed sin-cos ``pos_embed`` if chosen.

        A ``StrictPretrained`` checkpoint, if any, is loaded after this whole
        method, also for a top-level ``MaskedViT`` (see
        ``install_load_last``), so it overwrites the sin-cos embedding.
        """
        super().init_weights()
        self._init_sincos_pos_embed()

    def _init_sincos_pos_embed(self) -> None:
        if self.pos_embed_type != 'sincos':
            return
        height, width = self.patch_resolution
        if height != width:
            raise ValueError('MaskedViT.pos_embed_type=\'sincos\' needs a '
                             f'square patch grid, got {self.patch_resolution}')
        pos_embed = build_2d_sincos_position_embedding(
            height, self.embed_dims, cls_token=self.num_extra_tokens > 0)
        self.pos_embed.data.copy_(pos_embed.float())

    def train(self, mode: bool = True) -> 'MaskedViT':
        """Set train / eval mode and return self (mmpretrain returns None)."""
        super().train(mode)
        return self

    @property
    def num_prefix_tokens(self) -> int:
        """Number of tokens prepended to the patch tokens (CLS: 1, else 0)."""
        return self.num_extra_tokens

    def embed_patches(self, x: Tensor) -> Tuple[Tensor, Tuple[int, int]]:
        """Patch-embed images and add position embeddings.

        The position embedding is resized (``interpolate_mode``) to the
        input's patch grid, so any image size divisible by the patch size
        works.

        Args:
            x (Tensor): (B, 3, H, W) images.

        Returns:
            tuple: patch tokens (B, N, C) with position embedding added
            (row-major, ``N = H/p * W/p``), and the patch grid (h, w).
        """
        tokens, patch_resolution = self.patch_embed(x)
        return self.add_patch_pos_embed(tokens,
                                        patch_resolution), patch_resolution

    def add_patch_pos_embed(self, tokens: Tensor,
                            patch_resolution: Tuple[int, int]) -> Tensor:
        """Add the (resized) position embedding to all N patch tokens.

        Args:
            tokens (Tensor): (B, N, C) patch embeddings, row-major.
            patch_resolution (tuple): patch grid (h, w), ``h * w = N``.

        Returns:
            Tensor: (B, N, C).
        """
        pos_embed = self._resized_pos_embed(patch_resolution)
        return tokens + pos_embed[:, self.num_prefix_tokens:]

    def prefix_tokens(self, batch_size: int,
                      patch_resolution: Tuple[int, int]) -> Tensor:
        """The prefix (CLS) tokens with their position embedding.

        Args:
            batch_size (int): rows to return (B * G for grouped inputs).
            patch_resolution (tuple): patch grid (h, w) of the input.

        Returns:
            Tensor: (batch_size, P, C); P is 0 without a CLS token.
        """
        if self.cls_token is None:
            return self.pos_embed.new_zeros(batch_size, 0, self.embed_dims)
        pos_embed = self._resized_pos_embed(patch_resolution)
        cls_token = self.cls_token + pos_embed[:, :self.num_prefix_tokens]
        return cls_token.expand(batch_size, -1, -1)

    def encode(self,
               tokens: Tensor,
               patch_resolution: Tuple[int, int],
               num_groups: int = 1) -> Tuple[Tensor, ...]:
        """Run the transformer on (grouped) patch tokens.

        Args:
            tokens (Tensor): (B, L, C) position-embedded patch tokens, e.g.
                from :meth:`embed_patches` and ``gather_tokens``.
            patch_resolution (tuple): patch grid (h, w) of the image, used for
                the prefix tokens' position embedding.
            num_groups (int): G; consecutive runs of L / G tokens form the
                groups, and attention is confined to each group.

        Returns:
            tuple[Tensor]: one (B * G, P + L / G, C) tensor per entry of
            ``out_indices``.
        """
        batch_size, num_tokens, channels = tokens.shape
        if isinstance(num_groups, bool) or not isinstance(
                num_groups, int) or num_groups < 1:
            raise ValueError(
                f'num_groups must be a positive int, got {num_groups!r}')
        if num_tokens % num_groups != 0:
            raise ValueError(
                f'{num_tokens} tokens cannot be split into num_groups='
                f'{num_groups} equal groups; select a multiple of num_groups '
                'tokens (see mmmoma.models.masking.split_into_groups)')
        x = tokens.reshape(batch_size * num_groups, num_tokens // num_groups,
                           channels)
        x = torch.cat([self.prefix_tokens(x.shape[0], patch_resolution), x],
                      dim=1)
        x = self.drop_after_pos(x)
        x = self.pre_norm(x)

        outs = []
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i == len(self.layers) - 1 and self.final_norm:
                x = self.ln1(x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)

    def forward(self,
                x: Tensor,
                token_ids: Optional[Tensor] = None,
                num_groups: int = 1) -> Tuple[Tensor, ...]:
        """Encode all patch tokens, or a per-sample subset in groups.

        Args:
            x (Tensor): (B, 3, H, W) images.
            token_ids (Tensor, optional): (B, L) patch-space indices of the
                tokens to encode, in the order to encode them (see
                ``random_token_split`` / ``split_into_groups``). None: the
                plain ``VisionTransformer`` forward.
            num_groups (int): G, the number of disjoint groups the L selected
                tokens are split into (consecutive runs of ``token_ids``).
                ``num_groups > 1`` without ``token_ids`` groups all patches in
                row-major order.

        Returns:
            tuple[Tensor]: without ``token_ids`` and with ``num_groups=1``, the
            parent's outputs (formatted by ``out_type``). Otherwise raw token
            sequences (B * G, P + L / G, C), one per ``out_indices`` entry.
        """
        if token_ids is None and num_groups == 1:
            return super().forward(x)
        tokens, patch_resolution = self.embed_patches(x)
        if token_ids is not None:
            if token_ids.dim() != 2 or token_ids.shape[0] != x.shape[0]:
                raise ValueError(
                    'token_ids must have shape (B, L) with B = '
                    f'{x.shape[0]}, got {tuple(token_ids.shape)}')
            tokens = gather_tokens(tokens, token_ids)
        return self.encode(tokens, patch_resolution, num_groups)

    def _resized_pos_embed(self, patch_resolution: Sequence[int]) -> Tensor:
        return resize_pos_embed(
            self.pos_embed,
            self.patch_resolution,
            patch_resolution,
            mode=self.interpolate_mode,
            num_extra_tokens=self.num_extra_tokens)
