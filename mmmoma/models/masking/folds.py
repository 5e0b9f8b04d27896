"""Target-side generators: SdAE's multi-fold split, teacher crop, full image.

Each refines the plan of a ``base`` generator (default: MAE's random split,
:class:`~.generators.RandomTokenMask`) by regrouping its target side, so any
student mask can be combined with any of them, e.g. SimMIM blocks in folds::

    dict(type='MultiFoldSplit', num_folds=3,
         base=dict(type='BlockMask', mask_ratio=0.75, block_size=2))

The base's target ids come in random order (a random split's ``ids_mask``;
a block mask's blocks in random order), so consecutive runs of them are
random disjoint subsets: fold f is the f-th run (the official SdAE code's
reshape), a teacher crop is their head. A count that ``num_folds`` does not
divide leaves the last ``count % num_folds`` ids out, as the official code.
"""
from typing import NamedTuple, Optional, Union

import torch
from mmpretrain.registry import MODELS
from torch import Tensor

from .generators import Grid, MaskGenerator, RandomTokenMask, split_plan
from .indices import TokenSplit, split_into_groups
from .plan import MaskPlan, empty_ids


class FoldedTargets(MaskGenerator):
    """Base of the target-side generators: draw the base plan, then
    :meth:`refine` its targets into ``num_folds`` folds.

    Args:
        num_folds (int): t >= 1 folds, each encoded on its own.
        mask_ratio (float, optional): the base's mask ratio when ``base`` is
            None (a :class:`RandomTokenMask`); not allowed with ``base``.
        base (dict | MaskGenerator, optional): the student's generator.
        field (str): the config field errors name.
    """

    def __init__(self, num_folds: int = 1,
                 mask_ratio: Optional[float] = None,
                 base: Union[dict, MaskGenerator, None] = None,
                 field: str = 'model.mask_generator') -> None:
        super().__init__(field)
        if base is None:
            # neither: refine() only (e.g. a given split's folds)
            base = None if mask_ratio is None else RandomTokenMask(
                mask_ratio, field)
        elif mask_ratio is not None:
            raise ValueError(f'{field}: give mask_ratio or base, not both '
                             '(the base sets its own mask ratio)')
        elif isinstance(base, dict):
            base = MODELS.build(base)
        self.base = base
        if isinstance(num_folds, bool) or not isinstance(num_folds, int):
            raise ValueError(f'{field}.num_folds must be an int, got '
                             f'{num_folds!r}')
        self.num_folds = num_folds

    @property
    def mask_ratio(self) -> Optional[float]:
        """The base's mask ratio, if it has one."""
        return getattr(self.base, 'mask_ratio', None)

    def __call__(self, batch_size: int, grid: Grid,
                 device: Optional[torch.device] = None,
                 generator: Optional[torch.Generator] = None) -> MaskPlan:
        if self.base is None:
            raise ValueError(f'{self.field} needs mask_ratio (a random split)'
                             ' or base (a generator config) to draw plans')
        plan = self.base(batch_size, grid, device=device,
                         generator=generator)
        return self.refine(plan, generator)

    def refine(self, plan: MaskPlan,
               generator: Optional[torch.Generator] = None) -> MaskPlan:
        """Regroup the target side of ``plan``.

        Args:
            plan (MaskPlan): the base plan.
            generator (torch.Generator, optional): for draws of the refine.

        Returns:
            MaskPlan: the same visible patches, the new target folds.
        """
        raise NotImplementedError

    def _folds(self, plan: MaskPlan, tokens: torch.Tensor,
               *rest: torch.Tensor) -> MaskPlan:
        folds, remainder = split_into_groups(tokens, self.num_folds,
                                             f'{self.field}.num_folds')
        return MaskPlan(plan.visible, folds,
                        torch.cat([remainder, *rest, plan.left_out], dim=1),
                        plan.grid)


@MODELS.register_module()
class MultiFoldSplit(FoldedTargets):
    """SdAE's multi-fold masking (§2.2): the target side sees the masked
    patches in ``num_folds`` disjoint folds (1: "only masked")."""

    def refine(self, plan: MaskPlan,
               generator: Optional[torch.Generator] = None) -> MaskPlan:
        return self._folds(plan, plan.target_ids)


@MODELS.register_module()
class TeacherCrop(FoldedTargets):
    """SdAE's teacher crop (Table 5): a random ``crop_ratio`` of the masked
    patches (the head of the base's random order), in ``num_folds`` folds.

    Args:
        crop_ratio (float): r_c in (0, 1].
        **kwargs: see :class:`FoldedTargets`.
    """

    def __init__(self, crop_ratio: float, **kwargs) -> None:
        super().__init__(**kwargs)
        if isinstance(crop_ratio, bool) or not isinstance(
                crop_ratio, (int, float)) or not 0.0 < crop_ratio <= 1.0:
            raise ValueError(f'{self.field}.crop_ratio must be a float in '
                             f'(0, 1], got {crop_ratio!r}')
        self.crop_ratio = float(crop_ratio)

    def refine(self, plan: MaskPlan,
               generator: Optional[torch.Generator] = None) -> MaskPlan:
        masked = plan.target_ids
        num_crop = max(1, round(self.crop_ratio * masked.shape[1]))
        return self._folds(plan, masked[:, :num_crop], masked[:, num_crop:])


@MODELS.register_module()
class FullImageFolds(FoldedTargets):
    """SdAE's "full image" teacher (Table 5): the target side encodes every
    patch, in ``num_folds`` random folds (one fold: row-major, no draw);
    only the masked patches get a loss. ``num_folds`` must divide N."""

    def refine(self, plan: MaskPlan,
               generator: Optional[torch.Generator] = None) -> MaskPlan:
        batch_size, device = plan.visible.shape[0], plan.visible.device
        num_patches = plan.num_patches
        if self.num_folds == 1:
            tokens = torch.arange(num_patches,
                                  device=device).expand(batch_size, -1)
        else:
            noise = torch.rand(batch_size, num_patches, generator=generator,
                               device=device)
            tokens = torch.argsort(noise, dim=1)
        folds, remainder = split_into_groups(tokens, self.num_folds,
                                             f'{self.field}.num_folds')
        if remainder.shape[1]:
            raise ValueError(
                f'{self.field}.num_folds={self.num_folds} must divide the '
                f'{num_patches} patches of a full-image target side (every '
                'patch is encoded)')
        return MaskPlan(plan.visible, folds, empty_ids(batch_size, device, 0),
                        plan.grid)


#: What the teacher sees (paper Table 5 / Fig. 4b), and the generator that
#: draws it: ``'masked'``: the masked tokens, in ``num_folds`` folds
#: (``num_folds=1``: "only masked"; > 1: multi-fold masking); ``'crop'``: a
#: random subset of ``crop_ratio`` of the masked tokens ("teacher crop");
#: ``'full'``: every patch token ("full image", only the masked positions
#: get a loss).
TEACHER_INPUT_GENERATORS = {
    'masked': 'MultiFoldSplit',
    'crop': 'TeacherCrop',
    'full': 'FullImageFolds'
}
TEACHER_INPUTS = tuple(TEACHER_INPUT_GENERATORS)


class TeacherTokens(NamedTuple):
    """Which tokens the teacher encodes, and in which folds.

    Attributes:
        fold_ids (Tensor): (B, F, L_f) patch indices, fold by fold; the
            teacher encodes each ``fold_ids[:, f]`` as its own sequence.
        target_ids (Tensor): (B, T) patch indices that get a loss, in the
            order of the teacher's output rows that are kept as targets.
        target_rows (Tensor | None): (B, T) positions of ``target_ids`` in
            the flattened (B, F * L_f) teacher output; None when every
            output row is a target (all modes but ``'full'``).
        left_out (Tensor): (B, R) patches the teacher does not see and the
            student does not see either (the remainder of splitting into
            equal folds, the masked patches outside a teacher crop).
    """
    fold_ids: Tensor
    target_ids: Tensor
    target_rows: Optional[Tensor]
    left_out: Tensor


def teacher_tokens_of(plan: MaskPlan) -> TeacherTokens:
    """The teacher's view of a mask plan: its folds are ``plan.targets``;
    the target ids are the fold ids the student does not see (all of them
    unless the teacher sees the whole image), in the teacher's output order.

    Args:
        plan (MaskPlan): the batch's plan.

    Returns:
        TeacherTokens: fold ids, target ids / rows and left-out ids.
    """
    flat = plan.target_ids
    if plan.num_overlapping == 0:
        return TeacherTokens(plan.targets, flat, None, plan.left_out)
    is_target = ~torch.gather(plan.is_visible(), 1, flat)
    # a stable sort keeps the teacher's output order of the masked tokens
    target_rows = torch.argsort(
        (~is_target).to(torch.uint8), dim=1,
        stable=True)[:, :flat.shape[1] - plan.num_overlapping]
    return TeacherTokens(plan.targets, torch.gather(flat, 1, target_rows),
                         target_rows, plan.left_out)


def fold_generator_cfg(teacher_input: str = 'masked',
                       num_folds: int = 1,
                       crop_ratio: Optional[float] = None,
                       **base) -> dict:
    """The mask-generator config of a ``teacher_input`` (paper §2.2).

    Args:
        teacher_input (str): one of :data:`TEACHER_INPUTS`.
        num_folds (int): t, folds of the teacher's tokens.
        crop_ratio (float, optional): r_c (``'crop'`` only).
        **base: ``mask_ratio=...`` or ``base=dict(...)``; nothing: refine
            only (:func:`select_teacher_tokens`).

    Returns:
        dict: e.g. ``dict(type='MultiFoldSplit', num_folds=3, ...)``.
    """
    if teacher_input not in TEACHER_INPUT_GENERATORS:
        raise ValueError(f'SdAE.teacher_input must be one of '
                         f'{TEACHER_INPUTS}, got {teacher_input!r}')
    cfg = dict(type=TEACHER_INPUT_GENERATORS[teacher_input],
               num_folds=num_folds, field='SdAE', **base)
    if teacher_input == 'crop':
        cfg['crop_ratio'] = crop_ratio
    return cfg


def select_teacher_tokens(split: TokenSplit,
                          teacher_input: str = 'masked',
                          num_folds: int = 1,
                          crop_ratio: Optional[float] = None,
                          generator: Optional[torch.Generator] = None
                          ) -> TeacherTokens:
    """The teacher's tokens for a given student split (paper §2.2): the
    ``teacher_input`` generator's refinement of the split's plan.

    Args:
        split (TokenSplit): the student's visible / masked tokens.
        teacher_input (str): one of :data:`TEACHER_INPUTS`.
        num_folds (int): number of disjoint folds of the teacher's tokens.
        crop_ratio (float, optional): r_c (``teacher_input='crop'`` only).
        generator (torch.Generator, optional): draws the patch order of
            ``'full'`` into folds when ``num_folds > 1``.

    Returns:
        TeacherTokens: fold ids, target ids and left-out ids.
    """
    folds = MODELS.build(fold_generator_cfg(teacher_input, num_folds,
                                            crop_ratio))
    grid = (1, split.ids_restore.shape[1])  # only N matters here
    return teacher_tokens_of(folds.refine(split_plan(split, grid),
                                          generator))


__all__ = [
    'FoldedTargets', 'MultiFoldSplit', 'TeacherCrop', 'FullImageFolds',
    'TeacherTokens', 'teacher_tokens_of', 'fold_generator_cfg',
    'select_teacher_tokens', 'TEACHER_INPUTS'
]
