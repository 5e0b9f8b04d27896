"""The mask plan: what every mask generator returns, and what reads it.

A :class:`MaskPlan` says, for one batch, which patches the masked encoder
(the student, the online encoder) sees and in which groups, which patches
the target side works on (SdAE's teacher folds; the masked patches that get
a loss), and which patches nobody sees. All ids are in *patch space*
(``0 .. N-1``, row-major, prefix tokens not counted; see :mod:`.indices`).

Invariant every generator keeps (the shapes are the same for every sample,
so nothing here synchronises a GPU):

* ``visible`` (B, G, L): the encoder's tokens, G disjoint groups of L; each
  group is encoded as its own sequence with its own CLS token
  (``MaskedViT.forward(x, token_ids=plan.visible_ids, num_groups=G)``);
* ``targets`` (B, F, T): the target side's tokens in F groups; disjoint
  from ``visible`` unless the target side sees the whole image (then it
  holds every patch, the visible ones included);
* ``left_out`` (B, R): in neither, disjoint from both;
* every patch is in at least one of the three.

Algorithms expose their plans to tools through one method,
``encoder_inputs(views, generator) -> (list[EncoderInput], notes)`` (the
masking visualiser draws any model that has it).
"""
from typing import List, NamedTuple, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

#: :attr:`EncoderInput.show` values
SHOW_MODES = ('visible', 'targets')


class MaskPlan(NamedTuple):
    """Which patches each side of a masked pre-training step sees.

    Attributes:
        visible (Tensor): (B, G, L) long, the encoder's patches in G groups.
        targets (Tensor): (B, F, T) long, the target side's patches in F
            groups (F = 0 when there is no target side, e.g. chunks).
        left_out (Tensor): (B, R) long, patches nobody sees.
        grid (tuple[int, int]): (h, w) patch grid, ``N = h * w``.
    """
    visible: Tensor
    targets: Tensor
    left_out: Tensor
    grid: Tuple[int, int]

    @property
    def num_patches(self) -> int:
        """N, patches per image."""
        return self.grid[0] * self.grid[1]

    @property
    def num_groups(self) -> int:
        """G, the groups of the encoder's input."""
        return self.visible.shape[1]

    @property
    def visible_ids(self) -> Tensor:
        """(B, G * L) the encoder's patches, group by group."""
        return self.visible.flatten(1)

    @property
    def target_ids(self) -> Tensor:
        """(B, F * T) the target side's patches, group by group."""
        return self.targets.flatten(1)

    @property
    def num_overlapping(self) -> int:
        """Patches in both ``visible`` and ``targets`` (from the shapes:
        every patch is in one of the three sets, ``left_out`` in no other)."""
        return (self.visible_ids.shape[1] + self.target_ids.shape[1] +
                self.left_out.shape[1] - self.num_patches)

    @property
    def masks_nothing(self) -> bool:
        """The encoder sees every patch (no masking)."""
        return self.visible_ids.shape[1] == self.num_patches

    def is_visible(self) -> Tensor:
        """(B, N) bool, True where the encoder sees the patch."""
        visible = torch.zeros(self.visible.shape[0], self.num_patches,
                              dtype=torch.bool, device=self.visible.device)
        return visible.scatter_(1, self.visible_ids, True)

    def hidden_mask(self) -> Tensor:
        """(B, h, w) bool, True where the encoder does *not* see the patch
        (SimMIM's mask-token positions)."""
        return (~self.is_visible()).view(-1, *self.grid)

    def restore_ids(self) -> Tensor:
        """(B, N) MAE's ``ids_restore``: the position of every patch in the
        sequence ``[visible tokens, the other patches]`` that a decoder
        appending mask tokens to the visible tokens unshuffles.

        The other patches are in ``[targets, left_out]`` order when the
        three sets partition the patches (so a random split gives back its
        own ``ids_restore``), else in row-major order.

        Returns:
            Tensor: (B, N) long.
        """
        if self.num_overlapping == 0:
            order = torch.cat(
                [self.visible_ids, self.target_ids, self.left_out], dim=1)
            return torch.argsort(order, dim=1)
        batch_size, num_visible = self.visible_ids.shape
        patches = torch.arange(self.num_patches, device=self.visible.device)
        key = (patches + num_visible).expand(batch_size, -1).clone()
        key.scatter_(1, self.visible_ids,
                     patches[:num_visible].expand(batch_size, -1))
        return torch.argsort(torch.argsort(key, dim=1), dim=1)


class EncoderInput(NamedTuple):
    """What one encoder of an algorithm sees of one view, for pictures.

    Attributes:
        title (str): e.g. ``'student, view 0 (for mae)'``.
        view (int): index of the view the encoder sees.
        plan (MaskPlan | None): None: the whole view.
        show (str): ``'visible'`` draws ``plan.visible`` (its groups in
            colours when G > 1), ``'targets'`` draws ``plan.targets`` in
            colours with ``plan.visible`` untinted.
        group_name (str): what a group is, e.g. ``'fold'``, ``'chunk'``.
    """
    title: str
    view: int
    plan: Optional[MaskPlan] = None
    show: str = 'visible'
    group_name: str = 'group'


def patch_size(backbone: nn.Module) -> int:
    """Side of a backbone's patches, the stride of its patch embedding."""
    stride = backbone.patch_embed.projection.stride
    return int(stride[0] if isinstance(stride, tuple) else stride)


def patch_grid(images: Tensor, patch: int) -> Tuple[int, int]:
    """(h, w) grid of ``patch`` px patches of (B, 3, H, W) images."""
    height, width = images.shape[-2:]
    if height % patch or width % patch:
        raise ValueError(f'the input size {height}x{width} is not a multiple '
                         f'of the patch size {patch}')
    return height // patch, width // patch


def backbone_grid(backbone: nn.Module, images: Tensor) -> Tuple[int, int]:
    """The patch grid a backbone cuts (B, 3, H, W) images into."""
    return patch_grid(images, patch_size(backbone))


def check_generator(mask_generator, grid: Tuple[int, int],
                    field: str) -> None:
    """Run a mask generator once at build time on the backbone's grid, so a
    setting it cannot serve fails before training (with a private random
    generator: the global RNG is not touched).

    Args:
        mask_generator: the generator to check.
        grid (tuple[int, int]): the backbone's patch grid at ``img_size``.
        field (str): the config field, named in the error.

    Raises:
        ValueError: naming ``field`` and the generator's own message.
    """
    try:
        plan = mask_generator(1, grid,
                              generator=torch.Generator().manual_seed(0))
    except ValueError as error:
        raise ValueError(f'{field}: {error} ({grid[0]}x{grid[1]} patches at '
                         "the backbone's img_size)") from None
    if not isinstance(plan, MaskPlan):
        raise ValueError(f'{field} must return a MaskPlan, got '
                         f'{type(plan).__name__}')


def stack_plans(plans: Sequence[MaskPlan]) -> MaskPlan:
    """Concatenate plans of the same shapes along the batch."""
    return MaskPlan(*(torch.cat([getattr(p, name) for p in plans])
                      for name in ('visible', 'targets', 'left_out')),
                    plans[0].grid)


def empty_ids(batch_size: int, device: Optional[torch.device],
              *shape: int) -> Tensor:
    """A (B, *shape) long tensor with no entries (a 0-sized dimension)."""
    return torch.empty(batch_size, *shape, dtype=torch.long, device=device)


__all__: List[str] = [
    'MaskPlan', 'EncoderInput', 'SHOW_MODES', 'patch_size', 'patch_grid',
    'backbone_grid', 'check_generator', 'stack_plans', 'empty_ids'
]
