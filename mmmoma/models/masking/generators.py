"""Registered mask generators: one class a masking strategy.

Every generator is built from a config (``dict(type='RandomTokenMask',
mask_ratio=0.9)``) and called as ``generator(batch_size, grid, device=None,
generator=None) -> MaskPlan`` (see :mod:`.plan`). A new strategy is one
class registered in mmpretrain's ``MODELS``; every algorithm takes it as its
``mask_generator`` and the masking visualiser draws it.
"""
from typing import Any, Dict, Optional, Tuple, Union

import torch
from mmpretrain.registry import MODELS
from torch import Tensor

from .indices import (TokenSplit, check_mask_ratio, num_masked_cells,
                      random_token_split, shuffled_chunks)
from .plan import MaskPlan, check_generator, empty_ids

Grid = Tuple[int, int]


class MaskGenerator:
    """The protocol: ``__call__(batch_size, grid, device, generator)``.

    Args:
        field (str): the config field errors name, e.g.
            ``'model.mask_generator'``.
    """

    def __init__(self, field: str = 'model.mask_generator') -> None:
        self.field = field

    def __call__(self,
                 batch_size: int,
                 grid: Grid,
                 device: Optional[torch.device] = None,
                 generator: Optional[torch.Generator] = None) -> MaskPlan:
        """Draw the plan of one batch.

        Args:
            batch_size (int): B.
            grid (tuple[int, int]): (h, w) patch grid of the input.
            device (torch.device, optional): device of the ids.
            generator (torch.Generator, optional): draws the randomness.

        Returns:
            MaskPlan: the batch's plan.
        """
        raise NotImplementedError

    def __repr__(self) -> str:
        settings = ', '.join(f'{key}={value!r}'
                             for key, value in vars(self).items()
                             if key != 'field')
        return f'{type(self).__name__}({settings})'


def split_plan(split: TokenSplit, grid: Grid) -> MaskPlan:
    """The plan of a random split: visible ``ids_keep``, one target group of
    ``ids_mask``, nothing left out."""
    return MaskPlan(split.ids_keep[:, None], split.ids_mask[:, None],
                    empty_ids(split.ids_keep.shape[0],
                              split.ids_keep.device, 0), tuple(grid))


@MODELS.register_module()
class RandomTokenMask(MaskGenerator):
    """MAE's random masking: ``int(N * (1 - mask_ratio))`` visible patches
    (a new random set per image, random order), the rest one target group.

    Args:
        mask_ratio (float): fraction masked, in [0, 1).
        field (str): the config field errors name.
    """

    def __init__(self, mask_ratio: float,
                 field: str = 'model.mask_generator') -> None:
        super().__init__(field)
        self.mask_ratio = check_mask_ratio(mask_ratio,
                                           f'{field}.mask_ratio')

    def __call__(self, batch_size: int, grid: Grid,
                 device: Optional[torch.device] = None,
                 generator: Optional[torch.Generator] = None) -> MaskPlan:
        split = random_token_split(batch_size, grid[0] * grid[1],
                                   self.mask_ratio, device=device,
                                   generator=generator)
        return split_plan(split, grid)


@MODELS.register_module()
class BlockMask(MaskGenerator):
    """SimMIM's mask: ``ceil(C * mask_ratio)`` of the C cells of a coarse
    grid of ``block_size × block_size`` patches are masked (SimMIM's
    ``MaskGenerator``: 30 of 49 at r = 0.6).

    Cells are taken in the random order of the draw, so both the visible and
    the masked patches come block by block in random block order (a fold of
    consecutive target ids is a random set of blocks).

    Args:
        mask_ratio (float): fraction of cells masked, in [0, 1).
        block_size (int): patches per cell side (SimMIM's mask patch size
            over the model's patch size).
        field (str): the config field errors name.
        block_name (str): how errors call the block size, e.g.
            ``'MimCo.mask_patch_size=32'``.
    """

    def __init__(self, mask_ratio: float, block_size: int = 1,
                 field: str = 'model.mask_generator',
                 block_name: Optional[str] = None) -> None:
        super().__init__(field)
        self.mask_ratio = check_mask_ratio(mask_ratio,
                                           f'{field}.mask_ratio')
        if isinstance(block_size, bool) or not isinstance(
                block_size, int) or block_size < 1:
            raise ValueError(f'{field}.block_size must be an int >= 1, got '
                             f'{block_size!r}')
        self.block_size = block_size
        self.block_name = block_name or f'{field}.block_size={block_size}'

    def cell_grid(self, grid: Grid) -> Grid:
        """The (h / b, w / b) grid of mask cells."""
        height, width = grid
        size = self.block_size
        if height % size or width % size:
            raise ValueError(
                f'{self.block_name} must divide the input size (a '
                f'{height}x{width} patch grid, blocks of {size}x{size} '
                'patches); set the crop size of the data pipeline to a '
                'multiple of it')
        return height // size, width // size

    def __call__(self, batch_size: int, grid: Grid,
                 device: Optional[torch.device] = None,
                 generator: Optional[torch.Generator] = None) -> MaskPlan:
        cells = self.cell_grid(grid)
        num_cells = cells[0] * cells[1]
        num_masked = num_masked_cells(num_cells, self.mask_ratio)
        noise = torch.rand(batch_size, num_cells, device=device,
                           generator=generator)
        order = torch.argsort(noise, dim=1)  # visible cells, then masked
        patch_ids = self.cell_patches(order, grid)
        split_at = (num_cells - num_masked) * self.block_size**2
        return MaskPlan(patch_ids[:, None, :split_at],
                        patch_ids[:, None, split_at:],
                        empty_ids(batch_size, noise.device, 0), tuple(grid))

    def cell_patches(self, cell_ids: Tensor, grid: Grid) -> Tensor:
        """The patch ids of cells, cell by cell (row-major in a cell).

        Args:
            cell_ids (Tensor): (B, K) cell indices, row-major on the cell
                grid.
            grid (tuple[int, int]): (h, w) patch grid.

        Returns:
            Tensor: (B, K * b * b) patch ids.
        """
        size, width = self.block_size, grid[1]
        cell_width = width // size
        rows, cols = cell_ids // cell_width, cell_ids % cell_width
        corner = rows * size * width + cols * size  # (B, K)
        steps = torch.arange(size, device=cell_ids.device)
        offsets = (steps[:, None] * width + steps[None, :]).flatten()
        return (corner[..., None] + offsets).flatten(1)


@MODELS.register_module()
class ShuffledChunks(MaskGenerator):
    """M-MoCo's chunks: shuffle the N patches and cut them into n equal
    chunks, each encoded with its own CLS token; ``N % n`` left out. One
    chunk is the whole image in row-major order (no draw). No target side.

    Args:
        num_chunks (int): n >= 1.
        field (str): the config field errors name.
    """

    def __init__(self, num_chunks: int,
                 field: str = 'model.mask_generator') -> None:
        super().__init__(field)
        if isinstance(num_chunks, bool) or not isinstance(
                num_chunks, int) or num_chunks < 1:
            raise ValueError(f'{field} must be an int >= 1, got '
                             f'{num_chunks!r}')
        self.num_chunks = num_chunks

    def __call__(self, batch_size: int, grid: Grid,
                 device: Optional[torch.device] = None,
                 generator: Optional[torch.Generator] = None) -> MaskPlan:
        chunks, left_out = shuffled_chunks(batch_size, grid[0] * grid[1],
                                           self.num_chunks, self.field,
                                           device, generator)
        return MaskPlan(chunks, empty_ids(batch_size, chunks.device, 0, 0),
                        left_out, tuple(grid))


def build_mask_generator(mask_generator: Union[dict, MaskGenerator, None],
                         default: dict,
                         field: str,
                         grid: Grid,
                         replaced: Optional[Dict[str, Any]] = None,
                         default_name: Optional[str] = None
                         ) -> MaskGenerator:
    """An algorithm's mask generator: its ``mask_generator`` config, or the
    paper's default built from its scalar settings; checked once on the
    backbone's grid (see :func:`check_generator`).

    Args:
        mask_generator (dict | MaskGenerator | None): the config field.
        default (dict): the generator config used when it is None.
        field (str): the config field, e.g. ``'MOMA.mask_generator'``.
        grid (tuple[int, int]): the backbone's patch grid at ``img_size``.
        replaced (dict, optional): ``field -> value`` of the scalar settings
            that configure the default; with ``mask_generator`` given they
            must be None (nothing is silently ignored).
        default_name (str, optional): what errors of the default generator
            name (e.g. its scalar settings); default: ``field``.

    Returns:
        MaskGenerator: the built generator.
    """
    if mask_generator is None:
        built = MODELS.build(default)
    else:
        clashing = [name for name, value in (replaced or {}).items()
                    if value is not None]
        if clashing:
            raise ValueError(
                f'{field} sets the masking, so {", ".join(clashing)} (the '
                'settings of the default masking) must be left out; move '
                'them into the generator config')
        built = MODELS.build(mask_generator) if isinstance(
            mask_generator, dict) else mask_generator
    check_generator(built, grid, field if mask_generator is not None else
                    default_name or field)
    return built


__all__ = [
    'MaskGenerator', 'RandomTokenMask', 'BlockMask', 'ShuffledChunks',
    'split_plan', 'build_mask_generator'
]
