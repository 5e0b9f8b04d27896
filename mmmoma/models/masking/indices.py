"""Patch-token index arithmetic shared by every mask generator.

All indices live in *patch space*: ``0 .. N-1`` over the ``N`` patch tokens of
an image, row-major, never counting the CLS / prefix tokens. Masking is index
arithmetic as in the official MAE code: argsort of uniform noise gives a random
permutation per sample; its head is kept, its tail is masked.
"""
import math
from typing import NamedTuple, Optional, Tuple

import torch
from torch import Tensor


class TokenSplit(NamedTuple):
    """A random split of the ``N`` patch tokens of each sample.

    Attributes:
        ids_keep (Tensor): (B, N_keep) indices of the visible tokens, in random
            order.
        ids_mask (Tensor): (B, N - N_keep) indices of the masked tokens, in
            random order.
        ids_restore (Tensor): (B, N) position of every patch in
            ``cat([ids_keep, ids_mask], 1)``; gathering a sequence laid out
            as keep-then-mask with it restores the row-major patch order.
    """
    ids_keep: Tensor
    ids_mask: Tensor
    ids_restore: Tensor


def check_mask_ratio(mask_ratio: float, name: str = 'mask_ratio') -> float:
    """Validate a mask ratio.

    Args:
        mask_ratio (float): fraction of patch tokens to mask, in [0, 1).
        name (str): the config field named in the error message.

    Returns:
        float: the mask ratio.

    Raises:
        ValueError: if the ratio is not a number in [0, 1).
    """
    if isinstance(mask_ratio, bool) or not isinstance(mask_ratio,
                                                      (int, float)):
        raise ValueError(f'{name} must be a float in [0, 1), '
                         f'got {mask_ratio!r}')
    if not 0.0 <= mask_ratio < 1.0:
        raise ValueError(f'{name} must be in [0, 1), got {mask_ratio}')
    return float(mask_ratio)


def num_visible_tokens(num_tokens: int, mask_ratio: float) -> int:
    """Number of tokens kept visible: ``int(N * (1 - mask_ratio))``, >= 1.

    Truncation as in the official MAE code (``len_keep = int(L * (1 -
    mask_ratio))``) and the official SdAE code: 68 of 196 at r = 0.65, 19 at
    0.9, 9 at 0.95 (rounding would give 69 / 20 / 10).

    Args:
        num_tokens (int): number of patch tokens N.
        mask_ratio (float): fraction masked, in [0, 1).

    Returns:
        int: the number of visible tokens.
    """
    check_mask_ratio(mask_ratio)
    return max(1, min(num_tokens, int(num_tokens * (1.0 - mask_ratio))))


def random_token_split(batch_size: int,
                       num_tokens: int,
                       mask_ratio: float,
                       device: Optional[torch.device] = None,
                       generator: Optional[torch.Generator] = None
                       ) -> TokenSplit:
    """Sample, per sample, which patch tokens stay visible.

    Args:
        batch_size (int): B.
        num_tokens (int): N, the number of patch tokens per image.
        mask_ratio (float): fraction of tokens masked, in [0, 1).
        device (torch.device, optional): device of the index tensors.
        generator (torch.Generator, optional): random generator (on
            ``device``) for reproducible splits.

    Returns:
        TokenSplit: ``ids_keep`` (B, N_keep), ``ids_mask`` (B, N - N_keep),
        ``ids_restore`` (B, N), with ``N_keep = num_visible_tokens(N, r)``.
    """
    num_keep = num_visible_tokens(num_tokens, mask_ratio)
    noise = torch.rand(
        batch_size, num_tokens, device=device, generator=generator)
    ids_shuffle = torch.argsort(noise, dim=1)
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    return TokenSplit(
        ids_keep=ids_shuffle[:, :num_keep],
        ids_mask=ids_shuffle[:, num_keep:],
        ids_restore=ids_restore)


def split_into_groups(ids: Tensor, num_groups: int,
                      name: str = 'num_groups') -> Tuple[Tensor, Tensor]:
    """Split each sample's index set into ``num_groups`` disjoint groups.

    Groups are consecutive runs of ``ids`` (which is usually in random order,
    so the groups are random subsets). When ``M`` is not divisible by
    ``num_groups``, the last ``M % num_groups`` indices are left out of every
    group and returned separately (the official SdAE code drops them).

    Args:
        ids (Tensor): (B, M) indices.
        num_groups (int): G, 1 <= G <= M.
        name (str): the config field named in error messages.

    Returns:
        tuple[Tensor, Tensor]: groups (B, G, M // G) and the left-over
        indices (B, M % G).

    Raises:
        ValueError: if ``num_groups`` is not an integer in [1, M].
    """
    num_ids = ids.shape[1]
    if isinstance(num_groups, bool) or not isinstance(num_groups, int):
        raise ValueError(f'{name} must be an int, got {num_groups!r}')
    if not 1 <= num_groups <= num_ids:
        raise ValueError(f'{name} must be in [1, {num_ids}] (the number of '
                         f'tokens to split), got {num_groups}')
    group_size = num_ids // num_groups
    used = group_size * num_groups
    groups = ids[:, :used].reshape(ids.shape[0], num_groups, group_size)
    return groups, ids[:, used:]


def shuffled_chunks(batch_size: int,
                    num_tokens: int,
                    num_chunks: int,
                    name: str = 'num_chunks',
                    device: Optional[torch.device] = None,
                    generator: Optional[torch.Generator] = None
                    ) -> Tuple[Tensor, Tensor]:
    """Shuffle each sample's patches and cut them into equal chunks (M-MoCo).

    M-MoCo (§3.2, Fig. 2) shuffles the N patch tokens and slices the
    sequence into n chunks of equal length. When n does not divide N, each
    chunk gets ``N // n`` tokens and the ``N % n`` tokens at the end of the
    shuffled order (a different random set every call) are left out, as
    ``split_into_groups`` does. One chunk (n = 1) is the whole image in
    row-major order, no shuffle: the plain ViT forward.

    Args:
        batch_size (int): B.
        num_tokens (int): N, patch tokens per image.
        num_chunks (int): n, 1 <= n <= N.
        name (str): the config field named in error messages.
        device (torch.device, optional): device of the index tensors.
        generator (torch.Generator, optional): random generator.

    Returns:
        tuple[Tensor, Tensor]: chunks (B, n, N // n) of patch indices and
        the left-out indices (B, N % n).
    """
    if num_chunks == 1:
        ids = torch.arange(num_tokens, device=device).expand(batch_size, -1)
    else:
        noise = torch.rand(
            batch_size, num_tokens, device=device, generator=generator)
        ids = torch.argsort(noise, dim=1)
    return split_into_groups(ids, num_chunks, name)


def gather_tokens(tokens: Tensor, ids: Tensor) -> Tensor:
    """Select tokens per sample.

    Args:
        tokens (Tensor): (B, N, C).
        ids (Tensor): (B, K) indices into the N tokens.

    Returns:
        Tensor: (B, K, C) with ``out[b, k] = tokens[b, ids[b, k]]``.
    """
    index = ids.unsqueeze(-1).expand(-1, -1, tokens.shape[-1])
    return torch.gather(tokens, dim=1, index=index)


def split_prefix(tokens: Tensor,
                 num_prefix_tokens: int) -> Tuple[Tensor, Tensor]:
    """Split an encoder output into its prefix (CLS) and patch tokens.

    Args:
        tokens (Tensor): (B', P + L', C).
        num_prefix_tokens (int): P.

    Returns:
        tuple[Tensor, Tensor]: prefix (B', P, C) and patch tokens (B', L', C).
    """
    return tokens[:, :num_prefix_tokens], tokens[:, num_prefix_tokens:]


def unfold_groups(tokens: Tensor, num_groups: int) -> Tensor:
    """Undo the group folding of a grouped encoder output.

    Args:
        tokens (Tensor): (B * G, L_g, C), row ``b * G + g`` = group g of b.
        num_groups (int): G.

    Returns:
        Tensor: (B, G * L_g, C), the groups of each sample concatenated in
        group order (the order of the ``token_ids`` that were encoded).
    """
    rows, length, channels = tokens.shape
    return tokens.reshape(rows // num_groups, num_groups * length, channels)


def random_block_mask(batch_size: int,
                      grid: Tuple[int, int],
                      mask_ratio: float,
                      block_size: int = 1,
                      device: Optional[torch.device] = None,
                      generator: Optional[torch.Generator] = None) -> Tensor:
    """SimMIM masking: mask random cells of a coarse grid of mask patches.

    ``ceil(h * w * r)`` of the ``h * w`` mask patches are masked per sample,
    as SimMIM's ``MaskGenerator`` (``mask_count = ceil(token_count *
    mask_ratio)``: 30 of 49 at r = 0.6), then every mask patch is expanded to
    ``block_size × block_size`` model patches (``block_size = mask patch
    size / model patch size``).

    Args:
        batch_size (int): B.
        grid (tuple[int, int]): (h, w), the mask-patch grid of the image.
        mask_ratio (float): fraction of mask patches masked, in [0, 1).
        block_size (int): model patches per mask patch along each side.
        device (torch.device, optional): device of the mask.
        generator (torch.Generator, optional): random generator.

    Returns:
        Tensor: bool (B, h * block_size, w * block_size), True = masked.
    """
    height, width = grid
    check_mask_ratio(mask_ratio)
    num_cells = height * width
    num_masked = num_masked_cells(num_cells, mask_ratio)
    noise = torch.rand(
        batch_size, num_cells, device=device, generator=generator)
    ids_mask = torch.argsort(noise, dim=1)[:, num_cells - num_masked:]
    mask = torch.zeros(batch_size, num_cells, dtype=torch.bool,
                       device=noise.device)
    mask.scatter_(1, ids_mask, True)
    return expand_mask(mask.reshape(batch_size, height, width), block_size)


def num_masked_cells(num_cells: int, mask_ratio: float) -> int:
    """SimMIM's masked count ``ceil(num_cells * mask_ratio)``.

    Args:
        num_cells (int): mask patches per image, h * w.
        mask_ratio (float): fraction masked, in [0, 1).

    Returns:
        int: masked cells; 0 only for ``mask_ratio == 0``.
    """
    return min(num_cells, math.ceil(num_cells * mask_ratio))


def expand_mask(mask: Tensor, factor: int) -> Tensor:
    """Upsample a (B, h, w) mask by repeating each cell ``factor`` times
    along both axes: (B, h * factor, w * factor)."""
    if factor == 1:
        return mask
    return mask.repeat_interleave(factor, dim=1).repeat_interleave(
        factor, dim=2)
