"""MimCo: masked image modelling with a frozen contrastive teacher.

Paper: "MimCo: Masked Image Modeling Pre-training with Contrastive Teacher"
(Zhou et al., ACM MM 2022), §3, Algorithm 1. No public code exists; the
choices the paper leaves open are listed in :class:`MimCo`.

    mask       m: SimMIM random mask, 32-px mask patches, ratio 0.6
    student    z  = f(x, m)     masked patches replaced by a mask token
    teacher    zₖ = f′(x)       frozen contrastive model (MoCo v3 / MoBY)
    patch      qᵢ = p₂ᵖ(p₁ᵖ(z))ᵢ,  kᵢ₊ = p₃ᵖ(zₖ)ᵢ   at the masked patches i
               L_patch = 1/M Σᵢ −log e^{qᵢ·kᵢ₊/τ} / (e^{qᵢ·kᵢ₊/τ}
                                        + Σⱼ e^{qᵢ·kⱼ/τ})          (Eq. 1, 2)
               queue ← per-image mean of the teacher's patch keys (all
                       cells, §3.2; or the masked ones, Algorithm 1)
    image      q = p₂ᴵ(p₁ᴵ(GAP z)),  k₊ = p₃ᴵ(GAP zₖ)
               L_image = −log e^{q·k₊/τ} / (e^{q·k₊/τ} + Σᵢ e^{q·kᵢ/τ})
                                                                  (Eq. 3, 4)
               queue ← k₊
    momentum   p₃ ← m·p₃ + (1 − m)·p₁  (MoBY; from ``TeacherEMAHook``)
"""
from typing import Dict, List, Optional, Tuple, Union

import torch
from mmengine.dist import get_world_size
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from torch import Tensor, nn

from ..heads import MomentumContrastHead, moby_mlp
from ..masking import (EncoderInput, MaskPlan, build_mask_generator,
                       check_mask_ratio, patch_size)
from ..utils.key_queue import KeyQueue, check_queue_tiling
from ..utils.momentum import MomentumTarget, WithMomentumTarget
from ..utils.validation import one_of
from .base import MaskedPretrainer

PATCH_LOSSES = ('contrastive', 'l1')
PATCH_QUEUE_KEYS = ('all', 'masked')


def feature_channels(backbone: nn.Module) -> int:
    """Channels of a backbone's last output feature map.

    Args:
        backbone (nn.Module): an mmpretrain ``VisionTransformer`` (incl.
            ``MaskedViT`` / ``SimMIMViT``) or ``SwinTransformer`` (incl.
            ``SimMIMSwinTransformer``).

    Returns:
        int: ``embed_dims`` for ViTs, the last ``out_indices`` stage's width
        for Swins.
    """
    if hasattr(backbone, 'num_features'):  # Swin: one width per stage
        return int(backbone.num_features[backbone.out_indices[-1]])
    return int(backbone.embed_dims)


@MODELS.register_module()
class MimCo(WithMomentumTarget, MaskedPretrainer):
    """MimCo pre-training: patch- and image-level contrastive reconstruction.

    Choices where the paper is silent (all configurable):

    * **Masking** in the model (not the data pipeline), so the mask patch
      size is checked against the backbone's patch size when the model is
      built: a random ``mask_ratio`` of the ``(H / s) × (W / s)`` mask patches
      (``s = mask_patch_size``) is masked, ``ceil(h·w·r)`` of them as
      SimMIM's ``MaskGenerator`` (30 of 49 at 224 px and r = 0.6).
    * **No masking** (Table 11, "Masking image input" off: "degenerates to a
      knowledge distillation framework"): ``mask_ratio=0`` masks no cell,
      the student sees the whole image and L_patch runs over *every* cell.
      Any ratio > 0 masks at least one cell (the ceil).
    * **Patch grid of the losses**: the last feature map of student and
      teacher (ViT/16: 14 × 14; Swin: stride 32, 7 × 7 at 224 px); a cell is
      "masked" when its mask patch is. The feature stride must divide
      ``mask_patch_size`` (else a cell would be half masked).
    * **Patch heads**: :class:`~mmmoma.models.necks.ConvProjector` (1×1
      convolutions with BatchNorm = MoBY's MLP on every patch, hidden 4096,
      output 256). **Image heads**: MoBY's 2-layer MLP (mmpretrain
      ``NonLinearNeck``, hidden 4096, output 256, BN1d). Each level's
      p₁, p₂, p₃, queue and loss are one
      :class:`~mmmoma.models.heads.MomentumContrastHead`: ``patch_head``,
      ``image_head``.
    * **Momentum projectors** p₃ are EMA copies of the projectors p₁ (they
      must see features of the same width: student and teacher channels must
      match), updated after every iteration with MoBY's cosine momentum
      0.99 → 1 (``base_momentum`` / ``end_momentum``, by ``TeacherEMAHook``).
    * **Patch queue key** (``patch_queue_key``): per image, the mean of its
      L2-normalised teacher patch keys, re-normalised, over ``'all'`` its
      cells (default: §3.2 states it in words, "for image x, we instead put
      the average feature of all patch features of the teacher model into
      the key queue") or over its ``'masked'`` cells (Algorithm 1's
      ``enqueue_dequeue(queue_patch, mean(z_k^p))`` after ``z_k^p =
      z_k^p[m]``; its reduction axis is unstated, we keep one key per image
      as the text). B keys per step either way.
    * **Queues** start with random unit keys (MoCo); each step's loss uses
      the queue before that step's keys are enqueued.
    * **ℓ1 ablation** (``patch_loss='l1'``, Table 7): p₂ᵖ(p₁ᵖ(z)) predicts
      the teacher's feature map itself (the predictor outputs the teacher's
      width) under a mean ℓ1 loss at the masked patches, MaskFeat-style; no
      patch momentum projector, no patch queue.

    Args:
        backbone (dict): the student: a ``SimMIMViT`` (``out_type='featmap'``)
            or mmpretrain's ``SimMIMSwinTransformer``; called as
            ``backbone(x, mask=...)`` with a (B, H/p, W/p) mask.
        teacher (dict): ``FrozenTeacher`` config (``network`` returning a
            (B, C, h, w) feature map last, e.g. a ``MaskedViT`` with
            ``out_type='featmap'`` or a ``SwinTransformer``; ``checkpoint``).
        patch_projector (dict): p₁ᵖ config; ``in_channels`` is filled in.
        patch_predictor (dict): p₂ᵖ config; ``in_channels`` and
            ``out_channels`` are filled in: p₁ᵖ's output width, and the same
            for the keys of p₃ᵖ (contrastive) or the teacher's width (l1).
        image_projector (dict): p₁ᴵ config (pools the map); ``in_channels``
            is filled in.
        image_predictor (dict): p₂ᴵ config; ``in_channels`` and
            ``out_channels`` are filled in (p₁ᴵ's output width).
        A filled-in width that the config sets to another value is an
        error.
        patch_loss (str): one of :data:`PATCH_LOSSES`. Defaults to
            ``'contrastive'``.
        patch_queue_key (str): one of :data:`PATCH_QUEUE_KEYS`: which cells'
            keys are averaged into an image's patch-queue key. Defaults to
            ``'all'`` (§3.2).
        patch_loss_weight (float): weight of L_patch; 0 switches it off (its
            heads are not built). Defaults to 1.
        image_loss_weight (float): weight of L_image; 0 switches it off.
            Defaults to 1.
        patch_queue_length (int): K of the patch queue, a multiple of the
            global batch (checked before training by
            :meth:`check_train_loader`). Defaults to 4096.
        image_queue_length (int): K of the image queue, likewise. Defaults
            to 4096.
        temperature (float): τ of both InfoNCE losses. Defaults to 0.2.
        mask_patch_size (int, optional): side of a mask patch in pixels, a
            multiple of the backbone's patch size. Defaults to 32.
        mask_ratio (float, optional): fraction of mask patches masked, in
            [0, 1); 0 is Table 11's "no masking" (L_patch over every cell).
            Defaults to 0.6.
        mask_generator (dict, optional): any registered mask generator
            instead of SimMIM's (``mask_patch_size`` and ``mask_ratio`` must
            then be left out): the patches it does not make visible get the
            mask token; a feature-map cell is masked when all its patches
            are.
        base_momentum (float): momentum-projector EMA momentum at the start,
            in [0, 1]. Defaults to 0.99.
        end_momentum (float): ... at the end. Defaults to 1.0.
        momentum_update (str): ``'iter'`` (default, MoBY) or ``'epoch'``:
            when ``TeacherEMAHook`` updates the momentum projectors.
        data_preprocessor (dict, optional): e.g. ``SelfSupDataPreprocessor``.
        init_cfg (dict | list[dict], optional): init config.
    """

    def __init__(self,
                 backbone: dict,
                 teacher: dict,
                 patch_projector: dict = dict(
                     type='ConvProjector',
                     hidden_channels=4096,
                     out_channels=256),
                 patch_predictor: dict = dict(
                     type='ConvProjector', hidden_channels=4096),
                 image_projector: dict = moby_mlp(
                     with_avg_pool=True, out_channels=256),
                 image_predictor: dict = moby_mlp(with_avg_pool=False),
                 patch_loss: str = 'contrastive',
                 patch_queue_key: str = 'all',
                 patch_loss_weight: float = 1.0,
                 image_loss_weight: float = 1.0,
                 patch_queue_length: int = 4096,
                 image_queue_length: int = 4096,
                 temperature: float = 0.2,
                 mask_patch_size: Optional[int] = None,
                 mask_ratio: Optional[float] = None,
                 mask_generator: Optional[dict] = None,
                 base_momentum: float = 0.99,
                 end_momentum: float = 1.0,
                 momentum_update: str = 'iter',
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        super().__init__(backbone, data_preprocessor, init_cfg)
        # checkpoint errors name the config key
        self.teacher = MODELS.build(
            dict(type='FrozenTeacher',
                 config_key='model.teacher.checkpoint',
                 **teacher))
        self.model_patch_size = patch_size(self.backbone)
        self._build_masking(mask_generator, mask_ratio, mask_patch_size)
        self._feature_masks_checked = False  # see _feature_mask
        one_of(patch_loss, PATCH_LOSSES, 'MimCo.patch_loss')
        one_of(patch_queue_key, PATCH_QUEUE_KEYS, 'MimCo.patch_queue_key')
        if patch_queue_key == 'masked' and self.masks_nothing:
            masking = f'MimCo.mask_ratio={self.mask_ratio}' if \
                self.mask_patch_size is not None else \
                f'MimCo.mask_generator={self.mask_generator!r}'
            raise ValueError(
                "MimCo.patch_queue_key='masked' needs masked cells, but "
                f'{masking} masks none (Table 11 without masking): use '
                "patch_queue_key='all'")
        self.patch_queue_key = patch_queue_key
        for name, weight in (('patch_loss_weight', patch_loss_weight),
                             ('image_loss_weight', image_loss_weight)):
            if isinstance(weight, bool) or not isinstance(
                    weight, (int, float)) or weight < 0:
                raise ValueError(f'MimCo.{name} must be a number >= 0 (0 '
                                 f'switches the term off), got {weight!r}')
        if patch_loss_weight == 0 and image_loss_weight == 0:
            raise ValueError('MimCo.patch_loss_weight and '
                             'MimCo.image_loss_weight are both 0: nothing '
                             'to train; switch at least one term on')
        self.patch_loss_weight = float(patch_loss_weight)
        self.image_loss_weight = float(image_loss_weight)
        if isinstance(temperature, bool) or not isinstance(
                temperature, (int, float)) or temperature <= 0:
            raise ValueError(f'MimCo.temperature must be > 0, got '
                             f'{temperature!r}')
        self.temperature = float(temperature)

        student_channels = feature_channels(self.backbone)
        teacher_channels = feature_channels(self.teacher.network)
        self.teacher_channels = teacher_channels
        uses_momentum_projector = (image_loss_weight > 0 or (
            patch_loss_weight > 0 and patch_loss == 'contrastive'))
        if uses_momentum_projector and student_channels != teacher_channels:
            raise ValueError(
                f'MimCo: the student feature map has {student_channels} '
                f'channels and the teacher\'s {teacher_channels}; the '
                'momentum projectors are EMA copies of the projectors, so '
                'both must match (choose backbone / teacher archs of the '
                'same width)')

        if patch_loss_weight > 0:
            self.patch_head = MomentumContrastHead(
                patch_projector, patch_predictor, student_channels,
                level='patch', loss=patch_loss,
                target_channels=teacher_channels
                if patch_loss == 'l1' else None,
                queue_length=patch_queue_length, queue_key=patch_queue_key,
                temperature=self.temperature, name='MimCo.patch')
        if image_loss_weight > 0:
            self.image_head = MomentumContrastHead(
                image_projector, image_predictor, student_channels,
                level='image', queue_length=image_queue_length,
                temperature=self.temperature, name='MimCo.image')
        # p3 <- m p3 + (1 - m) p1 (MoBY); the teacher f' never changes
        self.momentum_target = MomentumTarget(
            self, {f'{name}.{average}': f'{name}.{source}'
                   for name, head in self.contrast_heads().items()
                   for average, source in head.momentum_pairs.items()},
            base_momentum, end_momentum, update=momentum_update)

    def contrast_heads(self) -> Dict[str, MomentumContrastHead]:
        """The built heads by attribute: ``patch_head`` / ``image_head``."""
        return {name: module for name, module in self.named_children()
                if isinstance(module, MomentumContrastHead)}

    def queues(self) -> Dict[str, KeyQueue]:
        """The key queues, by the config field of their length."""
        return {f'model.{head.level}_queue_length': head.queue
                for head in self.contrast_heads().values()
                if head.loss_type == 'contrastive'}

    def init_weights(self) -> None:
        """Initialise, then start each momentum projector as an exact copy
        of its projector."""
        super().init_weights()
        self.update_teacher(0.0)

    # ------------------------------------------------------------------
    # masking
    # ------------------------------------------------------------------
    def _build_masking(self, mask_generator: Optional[dict],
                       mask_ratio: Optional[float],
                       mask_patch_size: Optional[int]) -> None:
        """SimMIM's block mask (``mask_patch_size`` px blocks, a multiple of
        the backbone's patch size), or any ``mask_generator``."""
        self.mask_patch_size = None
        default = None
        if mask_generator is None:
            mask_ratio = check_mask_ratio(
                0.6 if mask_ratio is None else mask_ratio,
                'MimCo.mask_ratio')
            size = 32 if mask_patch_size is None else mask_patch_size
            if isinstance(size, bool) or not isinstance(size, int) or \
                    size < 1 or size % self.model_patch_size:
                raise ValueError(
                    f'MimCo.mask_patch_size must be a positive multiple of '
                    f"the backbone's patch size {self.model_patch_size}, got "
                    f'{size!r}')
            self.mask_patch_size = size
            default = dict(type='BlockMask', mask_ratio=mask_ratio,
                           block_size=size // self.model_patch_size,
                           field='MimCo',
                           block_name=f'MimCo.mask_patch_size={size}')
        self.mask_generator = build_mask_generator(
            mask_generator, default, 'MimCo.mask_generator',
            tuple(self.backbone.patch_resolution),
            {'MimCo.mask_ratio': mask_ratio,
             'MimCo.mask_patch_size': mask_patch_size})
        self.mask_ratio = getattr(self.mask_generator, 'mask_ratio', None)
        self.masks_nothing = self.mask_generator(
            1, tuple(self.backbone.patch_resolution),
            generator=torch.Generator().manual_seed(0)).masks_nothing

    def plan(self, images: Tensor,
             generator: Optional[torch.Generator] = None,
             mask_generator=None) -> MaskPlan:
        """The batch's mask (SimMIM's by default) on the student's patches:
        ``plan.hidden_mask()`` (B, H / p, W / p) is True where the patch is
        replaced by the mask token (see :meth:`MaskedPretrainer.plan`)."""
        height, width = images.shape[-2:]
        size = self.mask_patch_size
        if size is not None and (height % size or width % size):
            raise ValueError(
                f'MimCo.mask_patch_size={size} must divide the input size '
                f'{height}x{width} (set the crop size of the data pipeline '
                'to a multiple of it)')
        return super().plan(images, generator, mask_generator)

    def encoder_inputs(self, views: List[Tensor],
                       generator: torch.Generator) -> tuple:
        """What each encoder sees (the masking visualiser's protocol)."""
        return [
            EncoderInput('student (masked patches: the mask token)', 0,
                         self.plan(views[0], generator)),
            EncoderInput('teacher: full image', 0),
        ], [f'mask_generator={self.mask_generator!r}, model patch '
            f'{self.model_patch_size} px']

    def _feature_mask(self, hidden: Tensor,
                      feature_size: Tuple[int, int]) -> Tensor:
        """The mask on the feature-map grid (B, h, w): a cell is masked when
        every patch under it is (an error when only some are)."""
        stride = hidden.shape[1] // feature_size[0]
        if stride == 1:
            return hidden
        cells = hidden.view(hidden.shape[0], feature_size[0], stride,
                            feature_size[1], stride)
        masked = cells.all(dim=4).all(dim=2)
        # checked on the first step only (it reads the mask back to the
        # host); a generator's plans have the same structure every step
        if self._feature_masks_checked:
            return masked
        self._feature_masks_checked = True
        if bool((cells.any(dim=4).any(dim=2) != masked).any()):
            name = f'MimCo.mask_patch_size={self.mask_patch_size}' \
                if self.mask_patch_size is not None else \
                f'MimCo.mask_generator={self.mask_generator!r}'
            raise ValueError(
                f'{name} must be a multiple of the feature-map stride: '
                f'{hidden.shape[1]}x{hidden.shape[2]} patches give a '
                f'{feature_size[0]}x{feature_size[1]} feature map, and some '
                'cells are only partly masked')
        return masked

    # ------------------------------------------------------------------
    # forward
    # ------------------------------------------------------------------
    def extract_feat(self, inputs: Tensor) -> tuple:
        """Student features of unmasked images (kNN, fine-tuning checks)."""
        return self.backbone(inputs, mask=None)

    def loss(self, inputs: Union[Tensor, List[Tensor]],
             data_samples: List[DataSample], **kwargs) -> Dict[str, Tensor]:
        """Algorithm 1.

        Args:
            inputs (Tensor | list[Tensor]): (B, 3, H, W) images (one view;
                teacher and student see the same crop).
            data_samples (list[DataSample]): unused.

        Returns:
            dict: ``loss_patch`` and / or ``loss_image`` (weighted; they sum
            to the total loss).
        """
        images = inputs[0] if isinstance(inputs, (list, tuple)) else inputs
        for queue in self.queues().values():
            queue.check_batch(images.shape[0] * get_world_size())
        plan = self.plan(images)
        student = self.backbone(images, mask=plan.hidden_mask())[-1]  # z
        teacher = self.teacher(images)[-1]  # z_k, no grad
        if student.shape[0] != teacher.shape[0] or \
                student.shape[2:] != teacher.shape[2:]:
            raise ValueError(
                'MimCo: the teacher and student feature maps must cover the '
                'same patch grid, got student '
                f'{tuple(student.shape)} and teacher {tuple(teacher.shape)} '
                '(B, C, h, w); choose a teacher with the same output stride')
        feature_mask = self._feature_mask(plan.hidden_mask(),
                                          tuple(student.shape[2:]))
        # Table 11 without masking (mask_ratio 0): knowledge distillation,
        # L_patch over every cell
        loss_cells = torch.ones_like(feature_mask) if plan.masks_nothing \
            else feature_mask
        # k loss cells per sample, from the plan's shapes (no host read)
        patches_per_cell = plan.num_patches // loss_cells[0].numel()
        cells_per_sample = loss_cells[0].numel() if plan.masks_nothing else \
            (plan.num_patches - plan.visible_ids.shape[1]) // patches_per_cell

        losses = {}
        if self.patch_loss_weight > 0:
            losses['loss_patch'] = self.patch_loss_weight * \
                self.patch_head.loss(student, teacher, loss_cells,
                                     cells_per_sample)
        if self.image_loss_weight > 0:
            losses['loss_image'] = self.image_loss_weight * \
                self.image_head.loss(student, teacher)
        return losses

    def check_train_loader(self, batch_size: int, world_size: int,
                           drop_last: bool, dataset_size: int) -> None:
        """Check before training that every step tiles the key queues (see
        :func:`~mmmoma.models.utils.key_queue.check_queue_tiling`); called
        by ``TrainLoaderCheckHook`` at ``before_train``."""
        check_queue_tiling(self.queues(), batch_size, world_size, drop_last,
                           dataset_size)
