"""SdAE: self-distilled masked autoencoder with multi-fold masking.

Paper: "SdAE: Self-distillated Masked Autoencoder" (Chen et al., ECCV 2022),
§2.1-2.3; the choices the paper leaves open follow the official code (a fork
of the MAE code base), see ``shared/NOTES.md``.

    student    f_θ(x̂):  MAE encoder on the visible tokens x̂ = x ⊙ (1 − M),
               MAE decoder whose prediction layer outputs encoder-dim features
    teacher    f_φ(x̃):  EMA of the student encoder (no decoder), fed the
               masked tokens x̃ in ``num_folds`` disjoint folds x̃*¹ … x̃*ᵗ,
               each encoded on its own with its own CLS token (§2.2)
    target     f̄_φ = (f_φ − mean) / sqrt(var + ε)     per token   (Eq. 3)
    loss       1 − cos, as the official code computes Eq. 4:
               ``F.cosine_similarity(teacher, student)`` with its default
               ``dim=1`` on (B·t, n/t, C) fold tensors, i.e. a cosine over
               the tokens i of one fold, per channel, then the mean over
               (B·t, C) (``loss_reduction='fold'``, default); with the
               whole image as teacher input the official tensors are 2-D,
               so there it is per token. ``loss_reduction='token'``: a
               per-token cosine over channels everywhere.           (Eq. 4)
    EMA        φ ← m·φ + (1 − m)·θ, cosine schedule of m over the
               epochs                                               (Eq. 7)

The EMA update runs outside the forward pass, from ``TeacherEMAHook``
(after every epoch by default, or after every iteration with the epoch's
momentum). The teacher starts as the official timm ViT (random
trunc_normal(0.02) weights, position embedding and CLS token).
"""
import copy
import logging
import math
from typing import Dict, List, NamedTuple, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from mmengine.logging import print_log
from mmpretrain.models.selfsup import BaseSelfSupervisor
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from torch import Tensor, nn

from ..utils.momentum import check_unit_interval, cosine_momentum, ema_update_
from ..utils.token_selection import (TokenSplit, check_mask_ratio,
                                     gather_tokens, num_visible_tokens,
                                     random_token_split, split_into_groups,
                                     split_prefix, unfold_groups)
from ..utils.validation import positive_float

#: What the teacher sees (paper Table 5 / Fig. 4b):
#: ``'masked'``: the masked tokens, in ``num_folds`` folds (``num_folds=1``:
#: "only masked"; > 1: multi-fold masking); ``'crop'``: a random subset of
#: ``crop_ratio`` of the masked tokens ("teacher crop"); ``'full'``: every
#: patch token ("full image", only the masked positions get a loss).
TEACHER_INPUTS = ('masked', 'crop', 'full')
MOMENTUM_UPDATES = ('epoch', 'iter')
#: How Eq. (4)'s cosine is reduced (see :func:`fold_cosine_distance`).
LOSS_REDUCTIONS = ('fold', 'token')
#: Per-iteration EMA momenta whose half-life log(0.5) / log(m) is shorter
#: than this many iterations get a warning (the teacher then tracks the
#: student within tens of iterations; the paper calls SdAE "extremely
#: sensitive" to the momentum).
MIN_EMA_HALF_LIFE_ITERS = 100


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
        left_out (Tensor): (B, R) masked indices that fit no fold (the
            remainder of splitting into equal folds) and get no loss.
    """
    fold_ids: Tensor
    target_ids: Tensor
    target_rows: Optional[Tensor]
    left_out: Tensor


def select_teacher_tokens(split: TokenSplit,
                          teacher_input: str = 'masked',
                          num_folds: int = 1,
                          crop_ratio: Optional[float] = None,
                          generator: Optional[torch.Generator] = None
                          ) -> TeacherTokens:
    """The teacher's input tokens for a student token split (paper §2.2).

    ``split.ids_mask`` is already in random order, so consecutive runs of it
    are random disjoint subsets: fold f is ``ids_mask[:, f*L_f:(f+1)*L_f]``
    (the official code's reshape), and a teacher crop is its head. When the
    token count is not divisible by ``num_folds`` the last ``count %
    num_folds`` tokens are left out, as in the official code.

    Args:
        split (TokenSplit): the student's visible / masked tokens.
        teacher_input (str): one of :data:`TEACHER_INPUTS`.
        num_folds (int): number of disjoint folds of the teacher's tokens.
        crop_ratio (float, optional): r_c, the fraction of masked tokens in a
            teacher crop (``teacher_input='crop'`` only).
        generator (torch.Generator, optional): draws the row-major patch order
            of ``'full'`` into folds when ``num_folds > 1``.

    Returns:
        TeacherTokens: fold ids, target ids and left-out ids.
    """
    ids_mask = split.ids_mask
    batch_size = ids_mask.shape[0]
    if teacher_input == 'masked':
        tokens = ids_mask
    elif teacher_input == 'crop':
        num_crop = max(1, round(crop_ratio * ids_mask.shape[1]))
        tokens = ids_mask[:, :num_crop]
    elif teacher_input == 'full':
        num_tokens = split.ids_restore.shape[1]
        if num_folds == 1:
            tokens = torch.arange(
                num_tokens, device=ids_mask.device).expand(batch_size, -1)
        else:  # random folds over the whole image
            noise = torch.rand(batch_size, num_tokens, generator=generator,
                               device=ids_mask.device)
            tokens = torch.argsort(noise, dim=1)
    else:
        raise ValueError(f'SdAE.teacher_input must be one of '
                         f'{TEACHER_INPUTS}, got {teacher_input!r}')
    fold_ids, left_out = split_into_groups(tokens, num_folds,
                                           'SdAE.num_folds')
    if teacher_input != 'full':
        return TeacherTokens(fold_ids, fold_ids.flatten(1), None, left_out)
    if left_out.shape[1]:
        raise ValueError(
            f"SdAE.num_folds={num_folds} must divide the {tokens.shape[1]} "
            "patches with teacher_input='full' (every patch is encoded)")
    # Full image: the targets are the masked tokens, found in the folds
    # (every sample has the same number of them).
    flat = fold_ids.flatten(1)
    masked = torch.zeros_like(split.ids_restore, dtype=torch.bool)
    masked.scatter_(1, ids_mask, True)
    is_target = torch.gather(masked, 1, flat)
    # a stable sort keeps the teacher's output order of the masked tokens
    target_rows = torch.argsort(
        (~is_target).to(torch.uint8), dim=1,
        stable=True)[:, :ids_mask.shape[1]]
    return TeacherTokens(fold_ids, torch.gather(flat, 1, target_rows),
                         target_rows, left_out)


def normalize_target(features: Tensor, eps: float = 1e-6) -> Tensor:
    """Eq. (3): per-token normalisation over the feature dimension.

    ``(f − mean(f)) / sqrt(var(f) + eps)`` with the biased variance and no
    affine parameters (a layer norm without weights). The official code uses
    the unbiased variance; the two differ by the constant factor
    ``sqrt(C / (C − 1))``, which the cosine loss does not see.

    Args:
        features (Tensor): (..., C) teacher features.
        eps (float): added to the variance.

    Returns:
        Tensor: (..., C) normalised features.
    """
    return F.layer_norm(features, features.shape[-1:], eps=eps)


def cosine_distance(prediction: Tensor, target: Tensor) -> Tensor:
    """Eq. (4) per token: ``1 − cos`` over the feature dim, mean over tokens.

    ``loss_reduction='token'`` (and the official full-image mode, whose
    tensors are 2-D (tokens, C), so ``dim=1`` is the feature dim there).

    Args:
        prediction (Tensor): (B, T, C) student decoder outputs.
        target (Tensor): (B, T, C) normalised teacher features.

    Returns:
        Tensor: scalar, the mean over the B * T tokens.
    """
    cosine = F.cosine_similarity(
        prediction, target.to(prediction.dtype), dim=-1)
    return (1.0 - cosine).mean()


def fold_cosine_distance(prediction: Tensor, target: Tensor,
                         num_folds: int) -> Tensor:
    """Eq. (4) as the official code computes it (``loss_reduction='fold'``).

    ``1 − F.cosine_similarity(target, prediction, dim=1)`` on (B·t, L_f, C)
    fold tensors: for each fold and each channel c, the cosine between the
    teacher's and the student's values of c over the L_f tokens of the fold;
    then the mean over the B·t folds and C channels. (Eq. 4's sums run over
    the masked tokens i; this is the objective behind Tables 2 and 5.)

    Args:
        prediction (Tensor): (B, t * L_f, C) student outputs, fold by fold.
        target (Tensor): (B, t * L_f, C) normalised teacher features, in the
            same order.
        num_folds (int): t.

    Returns:
        Tensor: scalar, the mean over the B * t * C fold channels.
    """
    batch_size, num_tokens, channels = prediction.shape
    if num_tokens % num_folds:
        raise ValueError(f'{num_tokens} target tokens do not split into '
                         f'{num_folds} folds')
    shape = (batch_size * num_folds, num_tokens // num_folds, channels)
    cosine = F.cosine_similarity(
        prediction.reshape(shape), target.to(prediction.dtype).reshape(shape),
        dim=1)  # (B * t, C)
    return (1.0 - cosine).mean()


def within_image_token_cosine(tokens: Tensor) -> Tensor:
    """Mean pairwise cosine similarity of the distinct tokens of an image.

    For every image b, the mean of ``cos(tokens[b, i], tokens[b, j])`` over
    the T * (T − 1) ordered pairs i != j (the diagonal is left out), then
    the mean over the B images. A diagnostic of SdAE's collapse: it rises
    towards 1 when the teacher maps every token of an image to one vector,
    and is −1 / (T − 1) for T equal-norm tokens that sum to zero. A zero
    token has cosine 0 with every other token (``F.normalize``).

    Args:
        tokens (Tensor): (B, T, C) token features, e.g. the teacher's
            targets; computed in float32 (or the input's dtype if wider).

    Returns:
        Tensor: scalar, the mean over the B images; NaN when T < 2 (no
        pairs).
    """
    if tokens.dim() != 3:
        raise ValueError(f'tokens must be (B, T, C), got shape '
                         f'{tuple(tokens.shape)}')
    num_tokens = tokens.shape[1]
    dtype = torch.promote_types(tokens.dtype, torch.float32)
    if num_tokens < 2:
        return torch.full((), math.nan, dtype=dtype, device=tokens.device)
    unit = F.normalize(tokens.to(dtype), dim=-1)
    # sum over i != j of <u_i, u_j> = |sum_i u_i|^2 - sum_i |u_i|^2, in
    # O(T C) element-wise work and no matmul (the Gram matrix would cost
    # T^2 C and show in the benchmark's per-step FLOPs)
    total = unit.sum(dim=1)  # (B, C)
    off_diagonal = total.pow(2).sum(-1) - unit.pow(2).sum(dim=(1, 2))  # (B,)
    return (off_diagonal / (num_tokens * (num_tokens - 1))).mean()


def _has_pretrained(init_cfg) -> bool:
    """Whether an ``init_cfg`` loads weights (``Pretrained`` and the like)."""
    cfgs = init_cfg if isinstance(init_cfg, (list, tuple)) else [init_cfg]
    return any(isinstance(cfg, dict) and 'Pretrained' in str(cfg.get('type'))
               for cfg in cfgs)


@MODELS.register_module()
class SdAE(BaseSelfSupervisor):
    """Self-distilled MAE: an EMA teacher's features as MIM targets.

    Args:
        backbone (dict): the student encoder, a ``MaskedViT`` with
            ``out_type='raw'`` (e.g. ``pos_embed_type='sincos'``, as MAE).
            The teacher is built from the same config with
            ``drop_path_rate=0``, ``drop_rate=0`` and no ``init_cfg``, then
            updated only by EMA (``requires_grad=False``).
        neck (dict): the decoder, e.g. mmpretrain's ``MAEPretrainDecoder``;
            ``embed_dim`` and ``predict_feature_dim`` are filled in with the
            encoder width (the prediction layer outputs teacher features).
        mask_ratio (float): fraction of patches masked, in [0, 1). Defaults to
            0.75.
        teacher_input (str): what the teacher sees, one of
            :data:`TEACHER_INPUTS`. Defaults to ``'masked'``.
        num_folds (int): t, disjoint folds of the teacher's tokens, each
            encoded separately with its own CLS token. Defaults to 3 (with
            the defaults at 224 px: 147 masked tokens, 3 folds of 49).
        crop_ratio (float, optional): r_c in (0, 1], the fraction of masked
            tokens in a teacher crop; required for ``teacher_input='crop'``
            and only allowed there.
        base_momentum (float): EMA momentum m at the start, in [0, 1].
            Defaults to 0.96 (official 300-epoch recipe).
        end_momentum (float): EMA momentum m at the end, in [0, 1]. Defaults
            to 0.99.
        momentum_update (str): ``'epoch'`` (default, official) or ``'iter'``:
            when ``TeacherEMAHook`` updates the teacher. ``'iter'`` uses the
            epoch's momentum after every iteration (official
            ``momentum_schedule[epoch]``, see :attr:`momentum_progress`) and
            warns when its EMA half-life is under
            :data:`MIN_EMA_HALF_LIFE_ITERS` iterations.
        teacher_init (str): ``'random'`` (default, official: the teacher is
            initialised independently of the student, as a timm ViT) or
            ``'student'`` (a copy of the initialised student).
        target_eps (float): ε of Eq. (3), a finite number > 0. Defaults to
            1e-6.
        normalize_target (bool): apply Eq. (3) to the teacher's features
            ("teacher normalize", Table 5). Defaults to True (official).
        loss_reduction (str): one of :data:`LOSS_REDUCTIONS`. ``'fold'``
            (default, official): a cosine over the tokens of each fold, per
            channel (:func:`fold_cosine_distance`): ``'masked'``: the t
            folds (t = 1: one fold of all masked tokens); ``'crop'``: the
            crop's folds (one fold with ``num_folds=1``); ``'full'``: per
            token, as the official code's 2-D tensors there. ``'token'``: a
            per-token cosine over channels for every teacher input
            (:func:`cosine_distance`).
        data_preprocessor (dict, optional): e.g. ``SelfSupDataPreprocessor``.
        init_cfg (dict | list[dict], optional): e.g. MAE's Xavier init.
    """

    def __init__(self,
                 backbone: dict,
                 neck: dict,
                 mask_ratio: float = 0.75,
                 teacher_input: str = 'masked',
                 num_folds: int = 3,
                 crop_ratio: Optional[float] = None,
                 base_momentum: float = 0.96,
                 end_momentum: float = 0.99,
                 momentum_update: str = 'epoch',
                 teacher_init: str = 'random',
                 target_eps: float = 1e-6,
                 normalize_target: bool = True,
                 loss_reduction: str = 'fold',
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        super().__init__(
            backbone=backbone,
            data_preprocessor=data_preprocessor,
            init_cfg=init_cfg)
        self.neck = MODELS.build(
            self._decoder_cfg(neck, self.backbone.embed_dims))
        self.mask_ratio = check_mask_ratio(mask_ratio, 'SdAE.mask_ratio')
        if teacher_input not in TEACHER_INPUTS:
            raise ValueError(f'SdAE.teacher_input must be one of '
                             f'{TEACHER_INPUTS}, got {teacher_input!r}')
        if momentum_update not in MOMENTUM_UPDATES:
            raise ValueError(f'SdAE.momentum_update must be one of '
                             f'{MOMENTUM_UPDATES}, got {momentum_update!r}')
        if teacher_init not in ('random', 'student'):
            raise ValueError("SdAE.teacher_init must be one of ('random', "
                             f"'student'), got {teacher_init!r}")
        self.teacher_input = teacher_input
        self.crop_ratio = self._check_crop_ratio(crop_ratio, teacher_input)
        self.base_momentum = check_unit_interval(base_momentum,
                                                 'SdAE.base_momentum')
        self.end_momentum = check_unit_interval(end_momentum,
                                                'SdAE.end_momentum')
        self.momentum_update = momentum_update
        self.teacher_init = teacher_init
        # <= 0 / NaN made the targets NaN
        self.target_eps = positive_float(target_eps, 'model.target_eps')
        if not isinstance(normalize_target, bool):
            raise ValueError('SdAE.normalize_target must be a bool, got '
                             f'{normalize_target!r}')
        self.normalize_target = normalize_target
        if loss_reduction not in LOSS_REDUCTIONS:
            raise ValueError(f'SdAE.loss_reduction must be one of '
                             f'{LOSS_REDUCTIONS}, got {loss_reduction!r}')
        self.loss_reduction = loss_reduction
        if momentum_update == 'iter':
            self._warn_fast_ema()
        self.num_folds = self._check_num_folds(num_folds)
        if self.backbone.out_indices[-1] != self.backbone.num_layers - 1:
            raise ValueError('SdAE.backbone.out_indices must end with the '
                             'last layer (the target is the last block + '
                             f'final norm), got {self.backbone.out_indices}')

        # The EMA teacher: the encoder's architecture, no stochastic depth.
        teacher_cfg = copy.deepcopy(dict(backbone))
        teacher_cfg.update(drop_path_rate=0.0, drop_rate=0.0, init_cfg=None)
        self.teacher = MODELS.build(teacher_cfg)
        self.teacher.requires_grad_(False)
        # number of EMA updates so far (saved in checkpoints; logged)
        self.register_buffer('teacher_updates',
                             torch.zeros((), dtype=torch.long))

    # ------------------------------------------------------------------
    # config checks
    # ------------------------------------------------------------------
    @staticmethod
    def _decoder_cfg(neck: dict, width: int) -> dict:
        """Fill the decoder's input and prediction widths with the encoder
        width (mmpretrain's MAE decoder predicts pixels otherwise)."""
        neck = dict(neck)
        for key in ('embed_dim', 'predict_feature_dim'):
            if neck.setdefault(key, width) != width:
                raise ValueError(
                    f'SdAE.neck.{key}={neck[key]} must equal the encoder '
                    f'width {width} (the decoder predicts teacher features)')
        return neck

    @staticmethod
    def _check_crop_ratio(crop_ratio: Optional[float],
                          teacher_input: str) -> Optional[float]:
        if teacher_input != 'crop':
            if crop_ratio is not None:
                raise ValueError(
                    'SdAE.crop_ratio is only used with teacher_input='
                    f"'crop', got crop_ratio={crop_ratio!r} with "
                    f'teacher_input={teacher_input!r}')
            return None
        if isinstance(crop_ratio, bool) or not isinstance(
                crop_ratio, (int, float)) or not 0.0 < crop_ratio <= 1.0:
            raise ValueError("SdAE.crop_ratio (r_c, teacher_input='crop') "
                             f'must be a float in (0, 1], got {crop_ratio!r}')
        return float(crop_ratio)

    def _check_num_folds(self, num_folds: int) -> int:
        """Fail at build time when the teacher's tokens at the backbone's
        ``img_size`` cannot be split into ``num_folds`` folds: the real
        :func:`select_teacher_tokens` runs once on a fixed split of the
        backbone's patch grid (no global random state is used)."""
        num_tokens = self.backbone.patch_resolution[0] * \
            self.backbone.patch_resolution[1]
        ids = torch.arange(num_tokens).unsqueeze(0)
        num_keep = num_visible_tokens(num_tokens, self.mask_ratio)
        split = TokenSplit(ids[:, :num_keep], ids[:, num_keep:], ids)
        try:
            select_teacher_tokens(split, self.teacher_input, num_folds,
                                  self.crop_ratio,
                                  torch.Generator().manual_seed(0))
        except ValueError as error:
            raise ValueError(
                f'{error} (teacher_input={self.teacher_input!r}, '
                f'mask_ratio={self.mask_ratio}, {num_tokens} patches)'
            ) from None
        return num_folds

    # ------------------------------------------------------------------
    # training
    # ------------------------------------------------------------------
    def _warn_fast_ema(self) -> None:
        """Warn when per-iteration EMA updates make the teacher track the
        student within tens of iterations: EMA half-life
        ``log(0.5) / log(m)`` below :data:`MIN_EMA_HALF_LIFE_ITERS`."""
        momentum = min(self.base_momentum, self.end_momentum)
        half_life = (math.inf if momentum >= 1.0 else 0.0 if momentum <= 0.0
                     else math.log(0.5) / math.log(momentum))
        if half_life < MIN_EMA_HALF_LIFE_ITERS:
            print_log(
                f"SdAE.base_momentum={self.base_momentum} / end_momentum="
                f"{self.end_momentum} with momentum_update='iter': the "
                f'teacher halves its distance to the student every '
                f'{half_life:.1f} iterations (< {MIN_EMA_HALF_LIFE_ITERS}), '
                'i.e. it tracks the student within tens of iterations; the '
                "official recipe updates once per epoch (momentum_update="
                "'epoch')",
                logger='current',
                level=logging.WARNING)

    #: ``TeacherEMAHook`` in ``momentum_update='iter'`` mode: the official
    #: per-iteration mode takes ``momentum_schedule[epoch]``, constant
    #: within an epoch (progress = epoch / max_epochs); iteration-based
    #: loops fall back to iter / max_iters.
    momentum_progress = 'epoch'

    @torch.no_grad()
    def _init_teacher_as_timm_vit(self) -> None:
        """The official teacher's init (a timm ViT): Linear trunc_normal(std
        0.02) with zero bias, LayerNorm 1 / 0, a *random* trunc_normal(0.02)
        ``pos_embed`` and CLS token (no sin-cos; EMA then pulls them toward
        the student's), the patch-embedding conv with PyTorch's default."""
        teacher = self.teacher
        for module in teacher.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Conv2d):
                module.reset_parameters()
        nn.init.trunc_normal_(teacher.pos_embed, std=0.02)
        if getattr(teacher, 'cls_token', None) is not None:
            nn.init.trunc_normal_(teacher.cls_token, std=0.02)

    @torch.no_grad()
    def _init_student_as_mae(self) -> None:
        """MAE's student init beyond ``init_cfg``: patch-embedding weight
        xavier_uniform on its flattened (D, 3·p·p) view, CLS token normal
        (std 0.02) (MAE ``initialize_weights``; the decoder's mask token is
        drawn by ``MAEPretrainDecoder``)."""
        weight = self.backbone.patch_embed.projection.weight
        nn.init.xavier_uniform_(weight.view(weight.shape[0], -1))
        if getattr(self.backbone, 'cls_token', None) is not None:
            nn.init.normal_(self.backbone.cls_token, std=0.02)

    def init_weights(self) -> None:
        """Initialise student (MAE) and decoder; the teacher randomly as the
        official timm ViT (``teacher_init='random'``) or as a copy of the
        student (``teacher_init='student'``).

        A student with a pretrained ``init_cfg`` is left as loaded. As
        mmengine's ``BaseModule``, only the first call initialises (the
        Runner calls it again on a built model)."""
        first_call = not self.is_init
        super().init_weights()
        if not first_call:
            return
        if not _has_pretrained(self.backbone.init_cfg):
            self._init_student_as_mae()
        if self.teacher_init == 'student':
            self.teacher.load_state_dict(self.backbone.state_dict())
        else:
            self._init_teacher_as_timm_vit()

    def train(self, mode: bool = True) -> 'SdAE':
        """Set train / eval mode; the teacher always stays in eval mode."""
        super().train(mode)
        self.teacher.eval()
        return self

    def extract_feat(self, inputs: Tensor) -> tuple:
        """Student features of unmasked images (kNN, fine-tuning checks)."""
        return self.backbone(inputs)

    def teacher_momentum(self, progress: float) -> float:
        """The scheduled EMA momentum m at ``progress`` in [0, 1]."""
        return cosine_momentum(self.base_momentum, self.end_momentum,
                               progress)

    @torch.no_grad()
    def update_teacher(self, momentum: float) -> None:
        """Eq. (7): φ ← m·φ + (1 − m)·θ over the encoder's parameters.

        Only the encoder is averaged (CLS token, position and patch
        embedding, blocks, final norm), never the decoder or its mask token.
        Buffers, if any, are copied.

        Args:
            momentum (float): m in [0, 1].
        """
        ema_update_(self.teacher, self.backbone, momentum)
        self.teacher_updates += 1

    def sample_tokens(self,
                      batch_size: int,
                      num_tokens: int,
                      device: Optional[torch.device] = None,
                      generator: Optional[torch.Generator] = None
                      ) -> Tuple[TokenSplit, TeacherTokens]:
        """The student's random mask and the teacher's folds (§2.2).

        Args:
            batch_size (int): B.
            num_tokens (int): N, patch tokens per image.
            device (torch.device, optional): device of the indices.
            generator (torch.Generator, optional): random generator.

        Returns:
            tuple[TokenSplit, TeacherTokens]: the student's visible / masked
            tokens, and the teacher's folds of them (see
            :func:`select_teacher_tokens`).
        """
        split = random_token_split(batch_size, num_tokens, self.mask_ratio,
                                   device=device, generator=generator)
        return split, self.teacher_tokens(split, generator)

    def teacher_tokens(self,
                       split: TokenSplit,
                       generator: Optional[torch.Generator] = None
                       ) -> TeacherTokens:
        """The teacher's folds for a student split (see
        :func:`select_teacher_tokens`)."""
        return select_teacher_tokens(split, self.teacher_input,
                                     self.num_folds, self.crop_ratio,
                                     generator)

    @torch.no_grad()
    def targets(self, images: Tensor, tokens: TeacherTokens) -> Tensor:
        """Eq. (3) targets: teacher's last block → final LayerNorm → drop the
        folds' CLS tokens → per-token normalisation.

        Args:
            images (Tensor): (B, 3, H, W) the student's images (same crop).
            tokens (TeacherTokens): the folds to encode.

        Returns:
            Tensor: (B, T, C) targets, in ``tokens.target_ids`` order.
        """
        num_folds = tokens.fold_ids.shape[1]
        embedded, resolution = self.teacher.embed_patches(images)
        encoded = self.teacher.encode(
            gather_tokens(embedded, tokens.fold_ids.flatten(1)), resolution,
            num_groups=num_folds)[-1]  # (B * F, P + L_f, C)
        _, patches = split_prefix(encoded, self.teacher.num_prefix_tokens)
        features = unfold_groups(patches, num_folds)  # (B, F * L_f, C)
        if tokens.target_rows is not None:
            features = gather_tokens(features, tokens.target_rows)
        if not self.normalize_target:
            return features
        return normalize_target(features, self.target_eps)

    def loss(self, inputs: Union[Tensor, List[Tensor]],
             data_samples: List[DataSample], **kwargs) -> Dict[str, Tensor]:
        """Eq. (4) on one batch.

        Args:
            inputs (Tensor | list[Tensor]): (B, 3, H, W) images (a one-view
                list is accepted); teacher and student see the same crop.
            data_samples (list[DataSample]): unused.

        Returns:
            dict: ``loss`` (1 − cosine); ``teacher_updates`` (how many EMA
            updates the teacher has had; logged so that a missing
            ``TeacherEMAHook`` shows); ``target_token_cosine`` (logged, not
            a loss: :func:`within_image_token_cosine` of the (B, T, C)
            targets, the mean pairwise cosine between the distinct target
            tokens of an image, averaged over the batch; it shows SdAE's
            collapse, rising towards 1 when the teacher maps every token of
            an image to one vector).
        """
        if isinstance(inputs, (list, tuple)):
            if len(inputs) != 1:
                raise ValueError('SdAE takes one view per image (teacher and '
                                 f'student share the crop), got {len(inputs)}')
            inputs = inputs[0]
        embedded, resolution = self.backbone.embed_patches(inputs)
        batch_size, num_tokens, _ = embedded.shape
        split, tokens = self.sample_tokens(batch_size, num_tokens,
                                           inputs.device)
        latent = self.backbone.encode(
            gather_tokens(embedded, split.ids_keep), resolution)[-1]
        prediction = self.neck(latent, split.ids_restore)  # (B, N, C)

        target = self.targets(inputs, tokens)
        prediction = gather_tokens(prediction, tokens.target_ids)
        if self.loss_reduction == 'token' or self.teacher_input == 'full':
            loss = cosine_distance(prediction, target)
        else:
            loss = fold_cosine_distance(prediction, target,
                                        tokens.fold_ids.shape[1])
        with torch.no_grad():
            target_cosine = within_image_token_cosine(target.detach())
        return dict(
            loss=loss,
            teacher_updates=self.teacher_updates.detach().float(),
            target_token_cosine=target_cosine.detach().float())
