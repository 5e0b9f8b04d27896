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

The masking is a mask plan (``mmmoma.models.masking``): the student's
visible patches and the teacher's folds, by default MAE's random split
refined by :class:`~mmmoma.models.masking.MultiFoldSplit` /
``TeacherCrop`` / ``FullImageFolds`` (``teacher_input``), or any
``mask_generator``. The EMA update runs outside the forward pass, from
``TeacherEMAHook`` through :attr:`momentum_target` (after every epoch by
default, or after every iteration with the epoch's momentum). The teacher
starts as the official timm ViT (random trunc_normal(0.02) weights,
position embedding and CLS token).
"""
import copy
import logging
import math
from typing import Dict, List, Optional, Union

import torch
from mmengine.logging import print_log
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from torch import Tensor

from ..losses import (cosine_distance, fold_cosine_distance, normalize_target,
                      within_image_token_cosine)
from ..masking import (EncoderInput, TeacherTokens, TokenSplit,
                       build_mask_generator, check_mask_ratio,
                       fold_generator_cfg, gather_tokens, split_plan,
                       split_prefix, teacher_tokens_of, unfold_groups)
from ..masking.folds import TEACHER_INPUTS  # noqa: F401  (documented here)
from ..utils.init_schemes import (init_vit_as_mae, init_vit_as_timm,
                                  loads_pretrained)
from ..utils.momentum import MomentumTarget, WithMomentumTarget
from ..utils.validation import positive_float
from .base import MaskedPretrainer

#: How Eq. (4)'s cosine is reduced (see :func:`fold_cosine_distance`).
LOSS_REDUCTIONS = ('fold', 'token')
#: Per-iteration EMA momenta whose half-life log(0.5) / log(m) is shorter
#: than this many iterations get a warning (the teacher then tracks the
#: student within tens of iterations; the paper calls SdAE "extremely
#: sensitive" to the momentum).
MIN_EMA_HALF_LIFE_ITERS = 100


@MODELS.register_module()
class SdAE(WithMomentumTarget, MaskedPretrainer):
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
        mask_ratio (float, optional): fraction of patches masked, in [0, 1).
            Defaults to 0.75.
        teacher_input (str, optional): what the teacher sees, one of
            :data:`TEACHER_INPUTS`. Defaults to ``'masked'``.
        num_folds (int, optional): t, disjoint folds of the teacher's
            tokens, each encoded separately with its own CLS token. Defaults
            to 3 (with the defaults at 224 px: 147 masked tokens, 3 folds of
            49).
        crop_ratio (float, optional): r_c in (0, 1], the fraction of masked
            tokens in a teacher crop; required for ``teacher_input='crop'``
            and only allowed there.
        mask_generator (dict, optional): any registered mask generator
            instead of the four settings above (which must then be left
            out): its ``visible`` patches (one group) are the student's,
            its ``targets`` groups the teacher's folds, e.g.
            ``dict(type='MultiFoldSplit', num_folds=3,
            base=dict(type='BlockMask', mask_ratio=0.75, block_size=2))``.
        base_momentum (float): EMA momentum m at the start, in [0, 1].
            Defaults to 0.96 (official 300-epoch recipe).
        end_momentum (float): EMA momentum m at the end, in [0, 1]. Defaults
            to 0.99.
        momentum_update (str): ``'epoch'`` (default, official) or ``'iter'``:
            when ``TeacherEMAHook`` updates the teacher. ``'iter'`` uses the
            epoch's momentum after every iteration (official
            ``momentum_schedule[epoch]``) and
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
                 mask_ratio: Optional[float] = None,
                 teacher_input: Optional[str] = None,
                 num_folds: Optional[int] = None,
                 crop_ratio: Optional[float] = None,
                 mask_generator: Optional[dict] = None,
                 base_momentum: float = 0.96,
                 end_momentum: float = 0.99,
                 momentum_update: str = 'epoch',
                 teacher_init: str = 'random',
                 target_eps: float = 1e-6,
                 normalize_target: bool = True,
                 loss_reduction: str = 'fold',
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        super().__init__(backbone, data_preprocessor, init_cfg)
        self.neck = MODELS.build(
            self._decoder_cfg(neck, self.backbone.embed_dims))
        if teacher_init not in ('random', 'student'):
            raise ValueError("SdAE.teacher_init must be one of ('random', "
                             f"'student'), got {teacher_init!r}")
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
        self._build_masking(mask_generator, mask_ratio, teacher_input,
                            num_folds, crop_ratio)
        if self.backbone.out_indices[-1] != self.backbone.num_layers - 1:
            raise ValueError('SdAE.backbone.out_indices must end with the '
                             'last layer (the target is the last block + '
                             f'final norm), got {self.backbone.out_indices}')

        # The EMA teacher: the encoder's architecture, no stochastic depth.
        teacher_cfg = copy.deepcopy(dict(backbone))
        teacher_cfg.update(drop_path_rate=0.0, drop_rate=0.0, init_cfg=None)
        self.teacher = MODELS.build(teacher_cfg)
        # number of EMA updates so far (saved in checkpoints; logged)
        self.register_buffer('teacher_updates',
                             torch.zeros((), dtype=torch.long))
        # Eq. (7); the official per-iteration mode takes the epoch's m
        self.momentum_target = MomentumTarget(
            self, {'teacher': 'backbone'}, base_momentum, end_momentum,
            update=momentum_update, progress='epoch',
            counter='teacher_updates', transfer_encoder='teacher')
        self.momentum_target.freeze_averages()
        if momentum_update == 'iter':
            self._warn_fast_ema()

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

    def _build_masking(self, mask_generator: Optional[dict],
                       mask_ratio: Optional[float],
                       teacher_input: Optional[str],
                       num_folds: Optional[int],
                       crop_ratio: Optional[float]) -> None:
        """The mask generator: ``mask_generator``, or the paper's from the
        four scalar settings (checked on the backbone's grid at build)."""
        given = {'SdAE.mask_ratio': mask_ratio,
                 'SdAE.teacher_input': teacher_input,
                 'SdAE.num_folds': num_folds, 'SdAE.crop_ratio': crop_ratio}
        if mask_generator is None:
            mask_ratio = check_mask_ratio(
                0.75 if mask_ratio is None else mask_ratio,
                'SdAE.mask_ratio')
            teacher_input = teacher_input or 'masked'
            default = fold_generator_cfg(
                teacher_input, 3 if num_folds is None else num_folds,
                self._check_crop_ratio(crop_ratio, teacher_input),
                mask_ratio=mask_ratio)
        else:
            default = None
        grid = self.backbone.patch_resolution
        self.mask_generator = build_mask_generator(
            mask_generator, default, 'SdAE.mask_generator', grid, given,
            default_name=f'SdAE (teacher_input={teacher_input!r}, '
            f'mask_ratio={mask_ratio})')
        plan = self.mask_generator(1, grid,
                                   generator=torch.Generator().manual_seed(0))
        if plan.num_groups != 1 or plan.target_ids.shape[1] == 0:
            raise ValueError(
                f'SdAE.mask_generator={self.mask_generator!r} must give the '
                'student one group of visible patches and the teacher some '
                f'target patches; it gives {plan.num_groups} group(s) and '
                f'{plan.target_ids.shape[1]} target patches')
        # the paper's settings (None with another generator)
        self.mask_ratio = getattr(self.mask_generator, 'mask_ratio', None)
        self.num_folds = plan.targets.shape[1]
        self.teacher_input = teacher_input if mask_generator is None \
            else None
        self.crop_ratio = getattr(self.mask_generator, 'crop_ratio', None)

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
        if not loads_pretrained(self.backbone.init_cfg):
            init_vit_as_mae(self.backbone)
        if self.teacher_init == 'student':
            self.teacher.load_state_dict(self.backbone.state_dict())
        else:
            init_vit_as_timm(self.teacher)

    def train(self, mode: bool = True) -> 'SdAE':
        """Set train / eval mode; the teacher always stays in eval mode."""
        super().train(mode)
        self.teacher.eval()
        return self

    def teacher_tokens(self,
                       split: TokenSplit,
                       generator: Optional[torch.Generator] = None
                       ) -> TeacherTokens:
        """The teacher's folds of a given student split (the configured
        fold generator's refinement; see :func:`select_teacher_tokens`)."""
        grid = (1, split.ids_restore.shape[1])
        return teacher_tokens_of(
            self.mask_generator.refine(split_plan(split, grid), generator))

    def encoder_inputs(self, views: List[Tensor],
                       generator: torch.Generator) -> tuple:
        """What each encoder sees (the masking visualiser's protocol)."""
        plan = self.plan(views[0], generator)
        folds = plan.targets.shape[1:]
        teacher = self.teacher_input or 'target'
        return [
            EncoderInput('student', 0, plan),
            EncoderInput(
                f'teacher ({teacher}): {folds[0]} fold(s) of {folds[1]}, '
                f'{plan.left_out.shape[1]} left out', 0, plan, 'targets',
                'fold'),
        ], [f'mask_generator={self.mask_generator!r}; teacher panel: '
            "untinted = the student's visible patches"]

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
        encoded = self.teacher(
            images, token_ids=tokens.fold_ids.flatten(1),
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
        plan = self.plan(inputs)
        tokens = teacher_tokens_of(plan)
        latent = self.backbone(inputs, token_ids=plan.visible_ids)[-1]
        prediction = self.neck(latent, plan.restore_ids())  # (B, N, C)

        target = self.targets(inputs, tokens)
        prediction = gather_tokens(prediction, tokens.target_ids)
        # the full image: per token, as the official code's 2-D tensors
        if self.loss_reduction == 'token' or tokens.target_rows is not None:
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
