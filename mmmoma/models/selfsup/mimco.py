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
import copy
from typing import Dict, List, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from mmengine.dist import get_world_size
from mmpretrain.models.selfsup import BaseSelfSupervisor
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from torch import Tensor, nn

from ..losses import queue_info_nce
from ..utils.config_fill import fill_channels
from ..utils.key_queue import KeyQueue
from ..utils.momentum import check_unit_interval, cosine_momentum, ema_update_
from ..utils.token_selection import (check_mask_ratio, expand_mask,
                                     random_block_mask)

PATCH_LOSSES = ('contrastive', 'l1')
PATCH_QUEUE_KEYS = ('all', 'masked')
MOMENTUM_UPDATES = ('iter', 'epoch')


def _image_mlp(with_avg_pool: bool, **widths: int) -> dict:
    """MoBY's 2-layer MLP (Linear → BN → ReLU → Linear, hidden 4096) as
    mmpretrain's ``NonLinearNeck``."""
    return dict(
        type='NonLinearNeck',
        hid_channels=4096,
        num_layers=2,
        with_bias=True,
        with_last_bn=False,
        with_last_bias=True,
        with_avg_pool=with_avg_pool,
        norm_cfg=dict(type='BN1d'),
        **widths)


def _valid_queue_settings(length: int, batch_size: int, world_size: int,
                          field: str) -> str:
    """The nearest valid queue lengths and batch sizes, for a message."""
    global_batch = batch_size * world_size
    lower = length // global_batch * global_batch
    lengths = [n for n in (lower, lower + global_batch) if n > 0]
    allowed = (f'{field} a multiple of {global_batch} (nearest: '
               f'{" or ".join(map(str, lengths))})')
    sizes = [b for b in range(1, length // world_size + 1)
             if length % (b * world_size) == 0]
    below = [b for b in sizes if b < batch_size]
    above = [b for b in sizes if b > batch_size]
    nearest = ([below[-1]] if below else []) + ([above[0]] if above else [])
    if nearest:
        allowed += (f', or train_dataloader.batch_size such that batch_size '
                    f'x {world_size} divides {length} (nearest: '
                    f'{" or ".join(map(str, nearest))})')
    return allowed


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


def patch_size(backbone: nn.Module) -> int:
    """Side of the model's patches, the stride of its patch embedding."""
    stride = backbone.patch_embed.projection.stride
    return int(stride[0] if isinstance(stride, tuple) else stride)


@MODELS.register_module()
class MimCo(BaseSelfSupervisor):
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
      ``NonLinearNeck``, hidden 4096, output 256, BN1d).
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
        mask_patch_size (int): side of a mask patch in pixels, a multiple of
            the backbone's patch size. Defaults to 32.
        mask_ratio (float): fraction of mask patches masked, in [0, 1);
            0 is Table 11's "no masking" (L_patch over every cell). Defaults
            to 0.6.
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
                 image_projector: dict = _image_mlp(
                     with_avg_pool=True, out_channels=256),
                 image_predictor: dict = _image_mlp(with_avg_pool=False),
                 patch_loss: str = 'contrastive',
                 patch_queue_key: str = 'all',
                 patch_loss_weight: float = 1.0,
                 image_loss_weight: float = 1.0,
                 patch_queue_length: int = 4096,
                 image_queue_length: int = 4096,
                 temperature: float = 0.2,
                 mask_patch_size: int = 32,
                 mask_ratio: float = 0.6,
                 base_momentum: float = 0.99,
                 end_momentum: float = 1.0,
                 momentum_update: str = 'iter',
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        super().__init__(
            backbone=backbone,
            data_preprocessor=data_preprocessor,
            init_cfg=init_cfg)
        # checkpoint errors name the config key
        self.teacher = MODELS.build(
            dict(type='FrozenTeacher',
                 config_key='model.teacher.checkpoint',
                 **teacher))
        self.mask_ratio = check_mask_ratio(mask_ratio, 'MimCo.mask_ratio')
        self.model_patch_size = patch_size(self.backbone)
        if isinstance(mask_patch_size, bool) or not isinstance(
                mask_patch_size, int) or mask_patch_size < 1 or \
                mask_patch_size % self.model_patch_size:
            raise ValueError(
                f'MimCo.mask_patch_size must be a positive multiple of the '
                f"backbone's patch size {self.model_patch_size}, got "
                f'{mask_patch_size!r}')
        self.mask_patch_size = mask_patch_size
        if patch_loss not in PATCH_LOSSES:
            raise ValueError(f'MimCo.patch_loss must be one of '
                             f'{PATCH_LOSSES}, got {patch_loss!r}')
        self.patch_loss_type = patch_loss
        if patch_queue_key not in PATCH_QUEUE_KEYS:
            raise ValueError(f'MimCo.patch_queue_key must be one of '
                             f'{PATCH_QUEUE_KEYS}, got {patch_queue_key!r}')
        if patch_queue_key == 'masked' and self.mask_ratio == 0:
            raise ValueError(
                "MimCo.patch_queue_key='masked' needs masked cells, but "
                'MimCo.mask_ratio=0 masks none (Table 11 without masking): '
                "use patch_queue_key='all'")
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
        self.base_momentum = check_unit_interval(base_momentum,
                                                 'MimCo.base_momentum')
        self.end_momentum = check_unit_interval(end_momentum,
                                                'MimCo.end_momentum')
        if momentum_update not in MOMENTUM_UPDATES:
            raise ValueError(f'MimCo.momentum_update must be one of '
                             f'{MOMENTUM_UPDATES}, got {momentum_update!r}')
        self.momentum_update = momentum_update

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
            key_channels = self._out_channels(patch_projector,
                                              'patch_projector')
            self.patch_projector = self._build_head(
                'patch_projector', patch_projector, student_channels)
            # p2 maps back into the key space of p3 (= p1's output), or, for
            # the l1 ablation, onto the teacher's feature map
            self.patch_predictor = self._build_head(
                'patch_predictor', patch_predictor, key_channels,
                teacher_channels if patch_loss == 'l1' else key_channels)
            if patch_loss == 'contrastive':
                self.patch_momentum_projector = self._momentum_copy(
                    self.patch_projector)
                self.patch_queue = KeyQueue(patch_queue_length, key_channels,
                                            'MimCo.patch_queue_length')
        if image_loss_weight > 0:
            key_channels = self._out_channels(image_projector,
                                              'image_projector')
            self.image_projector = self._build_head(
                'image_projector', image_projector, student_channels)
            self.image_predictor = self._build_head('image_predictor',
                                                    image_predictor,
                                                    key_channels,
                                                    key_channels)
            self.image_momentum_projector = self._momentum_copy(
                self.image_projector)
            self.image_queue = KeyQueue(image_queue_length, key_channels,
                                        'MimCo.image_queue_length')

    # ------------------------------------------------------------------
    # construction helpers
    # ------------------------------------------------------------------
    @staticmethod
    def _out_channels(cfg: dict, name: str) -> int:
        if 'out_channels' not in cfg:
            raise ValueError(f'MimCo.{name} needs out_channels (the key '
                             'width), e.g. 256')
        return int(cfg['out_channels'])

    @staticmethod
    def _build_head(name: str,
                    cfg: dict,
                    in_channels: int,
                    out_channels: Optional[int] = None) -> nn.Module:
        """Build a head, filling (and checking) its channel counts."""
        fill = {'in_channels': in_channels}
        if out_channels is not None:
            fill['out_channels'] = out_channels
        return MODELS.build(fill_channels(cfg, f'MimCo.{name}', **fill))

    @staticmethod
    def _momentum_copy(projector: nn.Module) -> nn.Module:
        momentum_projector = copy.deepcopy(projector)
        momentum_projector.requires_grad_(False)
        return momentum_projector

    def init_weights(self) -> None:
        """Initialise, then start each momentum projector as an exact copy
        of its projector."""
        super().init_weights()
        self.update_teacher(0.0)

    # ------------------------------------------------------------------
    # momentum projectors (driven by TeacherEMAHook)
    # ------------------------------------------------------------------
    def teacher_momentum(self, progress: float) -> float:
        """The scheduled EMA momentum m at ``progress`` in [0, 1]."""
        return cosine_momentum(self.base_momentum, self.end_momentum,
                               progress)

    @torch.no_grad()
    def update_teacher(self, momentum: float) -> None:
        """p₃ ← m·p₃ + (1 − m)·p₁ for the patch and image heads.

        Named for ``TeacherEMAHook``'s interface: in MimCo the EMA side is the
        momentum projectors; the contrastive teacher f′ itself never changes.

        Args:
            momentum (float): m in [0, 1].
        """
        for prefix in ('patch', 'image'):
            momentum_projector = getattr(self, f'{prefix}_momentum_projector',
                                         None)
            if momentum_projector is not None:
                ema_update_(momentum_projector,
                            getattr(self, f'{prefix}_projector'), momentum)

    # ------------------------------------------------------------------
    # masking
    # ------------------------------------------------------------------
    def mask_grid(self, image_size: Tuple[int, int]) -> Tuple[int, int]:
        """The (h, w) grid of mask patches of an image of ``image_size``."""
        height, width = image_size
        if height % self.mask_patch_size or width % self.mask_patch_size:
            raise ValueError(
                f'MimCo.mask_patch_size={self.mask_patch_size} must divide '
                f'the input size {height}x{width} (set the crop size of the '
                'data pipeline to a multiple of it)')
        return height // self.mask_patch_size, width // self.mask_patch_size

    def generate_mask(self,
                      batch_size: int,
                      image_size: Tuple[int, int],
                      device: Optional[torch.device] = None,
                      generator: Optional[torch.Generator] = None) -> Tensor:
        """SimMIM mask on the mask-patch grid.

        Args:
            batch_size (int): B.
            image_size (tuple[int, int]): (H, W) of the input.
            device (torch.device, optional): device of the mask.
            generator (torch.Generator, optional): random generator.

        Returns:
            Tensor: bool (B, H / s, W / s), True = masked, s the mask patch
            size.
        """
        return random_block_mask(
            batch_size, self.mask_grid(image_size), self.mask_ratio,
            device=device, generator=generator)

    def student_mask(self, mask: Tensor) -> Tensor:
        """The mask on the student's patch grid.

        Args:
            mask (Tensor): bool (B, H / s, W / s) from :meth:`generate_mask`.

        Returns:
            Tensor: bool (B, H / p, W / p), True = the patch is replaced by
            the mask token, p the backbone's patch size.
        """
        return expand_mask(mask, self.mask_patch_size // self.model_patch_size)

    def _feature_mask(self, mask: Tensor, image_size: Tuple[int, int],
                      feature_size: Tuple[int, int]) -> Tensor:
        """The mask on the feature-map grid (B, h, w)."""
        stride = image_size[0] // feature_size[0]
        if stride * feature_size[0] != image_size[0] or \
                stride * feature_size[1] != image_size[1] or \
                self.mask_patch_size % stride:
            raise ValueError(
                f'MimCo.mask_patch_size={self.mask_patch_size} must be a '
                f'multiple of the feature-map stride: input '
                f'{image_size[0]}x{image_size[1]} gives a '
                f'{feature_size[0]}x{feature_size[1]} feature map')
        return expand_mask(mask, self.mask_patch_size // stride)

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
        batch_size, _, height, width = images.shape
        self._check_queues(batch_size * get_world_size())
        mask = self.generate_mask(batch_size, (height, width), images.device)
        student_mask = self.student_mask(mask)
        student = self.backbone(images, mask=student_mask)[-1]  # z
        teacher = self.teacher(images)[-1]  # z_k, no grad
        if student.shape[0] != teacher.shape[0] or \
                student.shape[2:] != teacher.shape[2:]:
            raise ValueError(
                'MimCo: the teacher and student feature maps must cover the '
                'same patch grid, got student '
                f'{tuple(student.shape)} and teacher {tuple(teacher.shape)} '
                '(B, C, h, w); choose a teacher with the same output stride')
        feature_mask = self._feature_mask(mask, (height, width),
                                          tuple(student.shape[2:]))
        # Table 11 without masking (mask_ratio 0): knowledge distillation,
        # L_patch over every cell
        loss_cells = feature_mask if self.mask_ratio > 0 else \
            torch.ones_like(feature_mask)

        losses = {}
        if self.patch_loss_weight > 0:
            losses['loss_patch'] = self.patch_loss_weight * self.patch_loss(
                student, teacher, loss_cells)
        if self.image_loss_weight > 0:
            losses['loss_image'] = self.image_loss_weight * self.image_loss(
                student, teacher)
        return losses

    def patch_loss(self, student: Tensor, teacher: Tensor,
                   mask: Tensor) -> Tensor:
        """L_patch (Eq. 1, 2) over the masked patches; enqueues the
        per-image mean key (over all or the masked cells:
        ``patch_queue_key``).

        Args:
            student (Tensor): (B, C, h, w) student feature map z.
            teacher (Tensor): (B, C_t, h, w) teacher feature map z_k.
            mask (Tensor): bool (B, h, w), True = a cell of the loss (the
                masked cells; every cell without masking).

        Returns:
            Tensor: scalar loss.
        """
        query = self.patch_predictor(self.patch_projector(student))
        query = query.permute(0, 2, 3, 1)[mask]  # (M, D)
        if self.patch_loss_type == 'l1':
            target = teacher.permute(0, 2, 3, 1)[mask]
            return F.l1_loss(query, target.to(query.dtype))
        with torch.no_grad():
            keys = F.normalize(self.patch_momentum_projector(teacher), dim=1)
        loss = queue_info_nce(query,
                              keys.permute(0, 2, 3, 1)[mask],
                              self.patch_queue.keys.clone(), self.temperature)
        self.patch_queue.enqueue(self.patch_queue_keys(keys, mask))
        return loss

    def patch_queue_keys(self, keys: Tensor, mask: Tensor) -> Tensor:
        """One patch-queue key per image: the mean of its normalised keys
        over the cells ``patch_queue_key`` names, re-normalised.

        Args:
            keys (Tensor): (B, D, h, w) L2-normalised momentum-projector keys.
            mask (Tensor): bool (B, h, w), True = masked.

        Returns:
            Tensor: (B, D) unit keys.
        """
        if self.patch_queue_key == 'all':  # §3.2
            mean = keys.mean(dim=(2, 3))
        else:  # Algorithm 1: mean(z_k^p[m]), image by image
            cells = mask[:, None].to(keys.dtype)
            mean = (keys * cells).sum(dim=(2, 3)) / cells.sum(dim=(2, 3))
        return F.normalize(mean, dim=1)

    def image_loss(self, student: Tensor, teacher: Tensor) -> Tensor:
        """L_image (Eq. 3, 4) on globally pooled features; enqueues k₊.

        Args:
            student (Tensor): (B, C, h, w) student feature map z.
            teacher (Tensor): (B, C, h, w) teacher feature map z_k.

        Returns:
            Tensor: scalar loss.
        """
        query = self.image_predictor(self.image_projector((student, )))[0]
        with torch.no_grad():
            keys = F.normalize(
                self.image_momentum_projector((teacher, ))[0], dim=1)
        loss = queue_info_nce(query, keys, self.image_queue.keys.clone(),
                              self.temperature)
        self.image_queue.enqueue(keys)
        return loss

    def _check_queues(self, global_batch_size: int) -> None:
        for name in ('patch_queue', 'image_queue'):
            queue = getattr(self, name, None)
            if queue is not None:
                queue.check_batch(global_batch_size)

    def check_train_loader(self, batch_size: int, world_size: int,
                           drop_last: bool, dataset_size: int) -> None:
        """Check before training that every step tiles the key queues.

        Each step enqueues one key per image of the global batch
        (``batch_size x world_size``) into each queue as one block, so each
        queue length must be a multiple of the global batch, and every batch
        must be full: with ``drop_last=False`` the last batch of an epoch is
        partial unless each rank's share of the dataset (``ceil(
        dataset_size / world_size)``, mmengine's ``DefaultSampler`` pads) is
        a multiple of ``batch_size``. Called by a hook at ``before_train``
        (the model cannot know the loader when it is built); the training
        step checks again (:meth:`KeyQueue.check_batch`) as a last resort.

        Args:
            batch_size (int): ``train_dataloader.batch_size``, per process.
            world_size (int): number of training processes.
            drop_last (bool): ``train_dataloader.drop_last``.
            dataset_size (int): number of training samples.

        Raises:
            ValueError: a queue length is not a multiple of the global batch
                (naming ``model.<patch|image>_queue_length`` and
                ``train_dataloader.batch_size``, with the nearest valid
                values of both), or ``drop_last=False`` leaves a partial last
                batch (naming ``train_dataloader.drop_last``).
        """
        for field, value, least in (
                ('train_dataloader.batch_size', batch_size, 1),
                ('world_size', world_size, 1),
                ('dataset_size', dataset_size, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or \
                    value < least:
                raise ValueError(f'{field}={value!r} is not allowed; '
                                 f'allowed: an int >= {least}')
        queues = [(f'model.{name}_length', getattr(self, name))
                  for name in ('patch_queue', 'image_queue')
                  if getattr(self, name, None) is not None]
        global_batch = batch_size * world_size
        for field, queue in queues:
            if queue.length % global_batch:
                allowed = _valid_queue_settings(queue.length, batch_size,
                                                world_size, field)
                raise ValueError(
                    f'{field}={queue.length} is not a multiple of the global '
                    f'batch: train_dataloader.batch_size={batch_size} x '
                    f'world_size={world_size} = {global_batch} keys enqueued '
                    f'per step; allowed: {allowed}')
        if not queues or drop_last:
            return
        per_rank = -(-dataset_size // world_size)  # DefaultSampler pads
        last = per_rank % batch_size
        if last:
            raise ValueError(
                f'train_dataloader.drop_last={drop_last!r} with '
                f'{dataset_size} samples on {world_size} process(es) '
                f'({per_rank} per process) and '
                f'train_dataloader.batch_size={batch_size} ends every epoch '
                f'with a partial batch of {last} per process '
                f'({last * world_size} keys instead of {global_batch}), '
                f'which breaks the tiling of '
                f'{" and ".join(field for field, _ in queues)}; '
                'allowed: train_dataloader.drop_last=True, or a dataset size '
                f'that is a multiple of the global batch {global_batch}')
