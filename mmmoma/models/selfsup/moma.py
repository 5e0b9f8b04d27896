"""MOMA: distil frozen MoCo v3 / MAE teachers into a heavily masked student.

Paper: "MOMA: Distill from Self-Supervised Teachers" (Yao et al.), §3.2-3.4.

    L = sum_t w_t * SmoothL1(P_t ∘ S(x_{v(t)} ⊙ M), N ∘ T_t(x_{u(t)}))
                                                              (Eq. 3, 4)

``T_t`` is a frozen pre-trained teacher that sees the whole view ``u(t)``
(the *original* view by default; Fig. 4: "or optionally strong augmented
image"); ``N`` its own final LayerNorm (the MAE / MoCo v3 releases carry it);
``S`` the student, which sees only the visible tokens (``x ⊙ M``, 90 % masked
by default) of the view ``v(t)`` paired with teacher t (the original view, or
the strongly augmented view of the same crop for a MoCo teacher, §3.3); and
``P_t`` a per-teacher projector (one linear layer by default), or one
projector ``P`` shared by all teachers as Eq. 4 writes it
(``shared_projector=True``).
"""
from typing import Dict, List, Optional, Union

import torch
from mmengine.model import ModuleDict
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from torch import Tensor, nn

from ..losses import smooth_l1_alignment
from ..masking import (EncoderInput, MaskPlan, build_mask_generator,
                       check_mask_ratio, gather_tokens, split_prefix,
                       unfold_groups)
from ..utils.validation import positive_float
from .base import MaskedPretrainer

ALIGN_MODES = ('cls', 'visible', 'both')
WEIGHTING_MODES = ('fixed', 'uncertainty')


@MODELS.register_module()
class MOMA(MaskedPretrainer):
    """MOMA knowledge distillation with any number of frozen teachers.

    Choices where the paper is silent (all configurable):

    * **Aligned tokens** (``align``): ``'cls'`` (the CLS outputs only),
      ``'visible'`` (each visible student token against the teacher's token
      at the same patch position) or ``'both'`` (default: the CLS token and
      the visible tokens, averaged over all aligned tokens).
    * **Masking**: one random mask per student view and batch element, shared
      by the teachers paired with that view; ``int(N * (1 - mask_ratio))``
      tokens stay visible, as MAE (19 of 196 at 0.9, 9 at 0.95). Any other
      registered generator through ``mask_generator`` (e.g. SimMIM blocks,
      M-MoCo chunks: each group is encoded with its own CLS token, and
      every group's CLS output is aligned with the teacher's CLS).
    * **Teacher weighting** (``teacher_weighting``): ``'fixed'`` uses each
      teacher's ``loss_weight`` (the paper's α, β); ``'uncertainty'`` learns
      them by homoscedastic uncertainty (the paper's suggested future work,
      §4.2), logged every iteration as ``weight_<name>``.

    Args:
        backbone (dict): the student, a ``MaskedViT`` with ``out_type='raw'``
            (pre-trained through its ``init_cfg=dict(type='StrictPretrained',
            ...)`` in the single-teacher recipes, random for multi-teacher).
        teachers (dict): ``name -> dict(teacher, loss_weight=1.0,
            student_view=0, teacher_view=0,
            projector=dict(type='TokenProjector'))`` where ``teacher`` is a
            ``FrozenTeacher`` config (``network``, ``checkpoint``, ...) whose
            network returns raw token sequences, ``student_view`` /
            ``teacher_view`` index the views the data pipeline produces (0:
            the original view; 1: e.g. the strong view of the same crop) fed
            masked to the student / whole to the teacher, and ``projector``
            gets ``in_dims`` / ``out_dims`` filled in (``projector=None``:
            identity, only when the dimensions match). ``loss_weight`` must
            be a finite number > 0; checkpoint errors name the key
            ``model.teachers.<name>.teacher.checkpoint``.
        mask_ratio (float, optional): fraction of student tokens masked, in
            [0, 1), of the default ``RandomTokenMask``. Defaults to 0.9
            (paper §4.1).
        mask_generator (dict, optional): any registered mask generator
            (``mmmoma.models.masking``) instead; ``mask_ratio`` must then be
            left out.
        align (str): tokens to align, one of ``ALIGN_MODES``.
        smooth_l1_beta (float): Smooth L1 ``beta``, a finite number > 0.
            Defaults to 1.0.
        teacher_weighting (str): one of ``WEIGHTING_MODES``.
        shared_projector (bool): one projector ``P`` for every teacher (Eq. 4
            writes a single ``P``); the teachers must then have the same
            width and the same ``projector`` config. ``self.projectors[name]``
            is the same module for every name. Defaults to False (one
            projector per teacher).
        data_preprocessor (dict, optional): e.g. ``SelfSupDataPreprocessor``.
        init_cfg (dict, optional): init config of the student side.
    """

    def __init__(self,
                 backbone: dict,
                 teachers: Dict[str, dict],
                 mask_ratio: Optional[float] = None,
                 mask_generator: Optional[dict] = None,
                 align: str = 'both',
                 smooth_l1_beta: float = 1.0,
                 teacher_weighting: str = 'fixed',
                 shared_projector: bool = False,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        super().__init__(backbone, data_preprocessor, init_cfg)
        if mask_ratio is not None:
            check_mask_ratio(mask_ratio, 'MOMA.mask_ratio')
        self.mask_generator = build_mask_generator(
            mask_generator,
            dict(type='RandomTokenMask',
                 mask_ratio=0.9 if mask_ratio is None else mask_ratio),
            'MOMA.mask_generator', self.backbone.patch_resolution,
            {'MOMA.mask_ratio': mask_ratio})
        self.mask_ratio = getattr(self.mask_generator, 'mask_ratio', None)
        if align not in ALIGN_MODES:
            raise ValueError(f'MOMA.align must be one of {ALIGN_MODES}, '
                             f'got {align!r}')
        if teacher_weighting not in WEIGHTING_MODES:
            raise ValueError('MOMA.teacher_weighting must be one of '
                             f'{WEIGHTING_MODES}, got {teacher_weighting!r}')
        # NaN / inf / 'abc' used to pass (inf: a zero loss)
        smooth_l1_beta = positive_float(smooth_l1_beta,
                                        'model.smooth_l1_beta')
        if not isinstance(teachers, dict) or not teachers:
            raise ValueError('MOMA.teachers must be a non-empty dict '
                             'name -> dict(teacher=..., loss_weight=..., '
                             'student_view=..., projector=...)')
        self.align = align
        self.smooth_l1_beta = smooth_l1_beta

        # mmengine's ModuleDict: init_weights reaches the projectors
        self.teachers = ModuleDict()
        self.projectors = ModuleDict()
        self.loss_weights: Dict[str, float] = {}
        self.student_views: Dict[str, int] = {}
        self.teacher_views: Dict[str, int] = {}
        if not isinstance(shared_projector, bool):
            raise ValueError('MOMA.shared_projector must be True or False, '
                             f'got {shared_projector!r}')
        self.shared_projector = shared_projector
        student_dims = self.backbone.embed_dims
        shared_spec = None  # (projector config, teacher width) when shared
        for name, spec in teachers.items():
            spec = dict(spec)
            unknown = set(spec) - {
                'teacher', 'loss_weight', 'student_view', 'teacher_view',
                'projector'
            }
            if unknown or 'teacher' not in spec:
                raise ValueError(
                    f'MOMA.teachers.{name} takes the keys teacher (required),'
                    f' loss_weight, student_view, teacher_view, projector; '
                    f'got {sorted(spec)}')
            # checked before the (slow) teacher build; a weight < 0 would
            # maximise the distance to the teacher
            self.loss_weights[name] = positive_float(
                spec.get('loss_weight', 1.0),
                f'model.teachers.{name}.loss_weight')
            # a teacher's checkpoint errors name its config key
            teacher = MODELS.build(
                dict(type='FrozenTeacher',
                     config_key=f'model.teachers.{name}.teacher.checkpoint',
                     **spec['teacher']))
            self.teachers[name] = teacher
            teacher_dims = teacher.network.embed_dims
            projector_cfg = spec.get('projector', dict(type='TokenProjector'))
            if shared_projector and self.projectors:
                first = next(iter(self.projectors))
                if (projector_cfg, teacher_dims) != shared_spec:
                    raise ValueError(
                        f'MOMA.shared_projector=True needs one projector for'
                        f' all teachers: MOMA.teachers.{name} has projector '
                        f'{projector_cfg} and width {teacher_dims}, '
                        f'MOMA.teachers.{first} has {shared_spec[0]} and '
                        f'{shared_spec[1]}')
                self.projectors[name] = self.projectors[first]
            else:
                shared_spec = (projector_cfg, teacher_dims)
                self.projectors[name] = self._build_projector(
                    name, projector_cfg, student_dims, teacher_dims)
            for key, views in (('student_view', self.student_views),
                               ('teacher_view', self.teacher_views)):
                view = spec.get(key, 0)
                if isinstance(view, bool) or not isinstance(view, int) \
                        or view < 0:
                    raise ValueError(
                        f'MOMA.teachers.{name}.{key} must be a view index '
                        'int >= 0 (0: the original view, 1: the strong '
                        f'view of the default pipeline), got {view!r}')
                views[name] = view
        self.weighting = (
            MODELS.build(dict(type='UncertaintyWeighting',
                              names=list(teachers)))
            if teacher_weighting == 'uncertainty' else None)

    @staticmethod
    def _build_projector(name: str, cfg: Optional[dict], student_dims: int,
                         teacher_dims: int) -> nn.Module:
        if cfg is None:
            if student_dims != teacher_dims:
                raise ValueError(
                    f'MOMA.teachers.{name}.projector=None (identity) cannot '
                    f'map the student dim {student_dims} to the teacher dim '
                    f'{teacher_dims}; use dict(type="TokenProjector")')
            return nn.Identity()
        cfg = dict(cfg)
        for key, dims in (('in_dims', student_dims),
                          ('out_dims', teacher_dims)):
            if cfg.setdefault(key, dims) != dims:
                side = 'student' if key == 'in_dims' else 'teacher'
                raise ValueError(
                    f'MOMA.teachers.{name}.projector.{key}={cfg[key]} does '
                    f'not match the {side} dim {dims}')
        return MODELS.build(cfg)

    def encoder_inputs(self, views: List[Tensor],
                       generator: torch.Generator) -> tuple:
        """What each encoder sees (the masking visualiser's protocol)."""
        inputs = []
        for view in sorted(set(self.student_views.values())):
            teachers = ', '.join(name for name, paired in
                                 self.student_views.items() if paired == view)
            inputs.append(EncoderInput(
                f'student, view {view} (for {teachers})', view,
                self.plan(views[view], generator), group_name='chunk'))
        for view in sorted(set(self.teacher_views.values())):
            teachers = ', '.join(name for name, paired in
                                 self.teacher_views.items() if paired == view)
            inputs.append(EncoderInput(
                f'teachers ({teachers}): view {view}, full image', view))
        return inputs, [f'mask_generator={self.mask_generator!r}; student '
                        f'views {dict(self.student_views)}']

    def loss(self, inputs: Union[Tensor, List[Tensor]],
             data_samples: List[DataSample], **kwargs) -> Dict[str, Tensor]:
        """Eq. (3) / (4).

        Args:
            inputs (Tensor | list[Tensor]): the views, each (B, 3, H, W);
                view 0 is the original view (every teacher's by default).
            data_samples (list[DataSample]): unused.

        Returns:
            dict: ``loss_<teacher>`` per teacher (weighted; they sum to the
            total), and with uncertainty weighting ``weight_<teacher>``.
        """
        views = inputs if isinstance(inputs, (list, tuple)) else [inputs]
        for key, pairing in (('student_view', self.student_views),
                             ('teacher_view', self.teacher_views)):
            for name, view in pairing.items():
                if view >= len(views):
                    raise ValueError(
                        f'MOMA.teachers.{name}.{key}={view}, but the data '
                        f'pipeline produces {len(views)} view(s); add the '
                        'view (e.g. MultiView after the shared crop) or '
                        f'change {key}')

        # Student: one random mask per view that some teacher is paired with.
        students = {}
        for view in sorted(set(self.student_views.values())):
            plan = self.plan(views[view])
            encoded = self.backbone(
                views[view], token_ids=plan.visible_ids,
                num_groups=plan.num_groups)[-1]  # (B * G, 1 + L, C)
            students[view] = (encoded, plan)

        losses: Dict[str, Tensor] = {}
        for name, teacher in self.teachers.items():
            # (B, P + N, C_t), N ∘ T(x): the whole (unmasked) teacher view
            target = teacher(views[self.teacher_views[name]])[-1]
            student, plan = students[self.student_views[name]]
            prediction = self.projectors[name](student)  # P ∘ S(x ⊙ M)
            prediction, target = self._aligned(prediction, target, plan)
            losses[name] = smooth_l1_alignment(prediction, target,
                                               self.smooth_l1_beta)
        return self._weighted(losses)

    def _aligned(self, prediction: Tensor, target: Tensor,
                 plan: MaskPlan) -> tuple:
        """Pick the token pairs to align according to ``self.align``.

        Args:
            prediction (Tensor): (B * G, 1 + L, C) projected student tokens
                of G groups (CLS first, then the group's visible tokens in
                ``plan.visible`` order).
            target (Tensor): (B, 1 + N, C) teacher tokens (CLS first).
            plan (MaskPlan): the student's plan.

        Returns:
            tuple[Tensor, Tensor]: matching (B, L', C) predictions / targets:
            the G CLS outputs against the teacher's CLS, the G * L visible
            tokens against the teacher's tokens at their patches.
        """
        num_groups = plan.num_groups
        cls, patches = split_prefix(prediction, 1)
        cls = unfold_groups(cls, num_groups)  # (B, G, C)
        patches = unfold_groups(patches, num_groups)  # (B, G * L, C)
        target_cls = target[:, :1].expand(-1, num_groups, -1)
        if self.align == 'cls':
            return cls, target_cls
        visible_target = gather_tokens(target[:, 1:], plan.visible_ids)
        if self.align == 'visible':
            return patches, visible_target
        return (torch.cat([cls, patches], dim=1),
                torch.cat([target_cls, visible_target], dim=1))

    def _weighted(self, losses: Dict[str, Tensor]) -> Dict[str, Tensor]:
        if self.weighting is None:
            return {
                f'loss_{name}': self.loss_weights[name] * loss
                for name, loss in losses.items()
            }
        out = {'loss_weighted': self.weighting(losses)}
        for name, weight in self.weighting.weights().items():
            out[f'weight_{name}'] = weight
            out[f'raw_{name}'] = losses[name].detach()
        return out
