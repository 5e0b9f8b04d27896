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
import torch.nn.functional as F
from mmengine.model import ModuleDict
from mmpretrain.models.selfsup import BaseSelfSupervisor
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from torch import Tensor, nn

from ..utils.token_selection import (TokenSplit, check_mask_ratio,
                                     gather_tokens, random_token_split)
from ..utils.validation import positive_float

ALIGN_MODES = ('cls', 'visible', 'both')
WEIGHTING_MODES = ('fixed', 'uncertainty')


def smooth_l1_alignment(prediction: Tensor, target: Tensor,
                        beta: float) -> Tensor:
    """Smooth L1 between projected student and teacher tokens (Eq. 3).

    Args:
        prediction (Tensor): (B, L, C) projector outputs P ∘ S(x ⊙ M).
        target (Tensor): (B, L, C) normalised teacher features N ∘ T(x).
        beta (float): Smooth L1 threshold (torch's ``beta``).

    Returns:
        Tensor: scalar, mean over tokens and channels.
    """
    return F.smooth_l1_loss(prediction, target.to(prediction.dtype),
                            beta=beta)


@MODELS.register_module()
class MOMA(BaseSelfSupervisor):
    """MOMA knowledge distillation with any number of frozen teachers.

    Choices where the paper is silent (all configurable):

    * **Aligned tokens** (``align``): ``'cls'`` (the CLS outputs only),
      ``'visible'`` (each visible student token against the teacher's token
      at the same patch position) or ``'both'`` (default: the CLS token and
      the visible tokens, averaged over all aligned tokens).
    * **Masking**: one random mask per student view and batch element, shared
      by the teachers paired with that view; ``int(N * (1 - mask_ratio))``
      tokens stay visible, as MAE (19 of 196 at 0.9, 9 at 0.95).
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
        mask_ratio (float): fraction of student tokens masked, in [0, 1).
            Defaults to 0.9 (paper §4.1).
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
                 mask_ratio: float = 0.9,
                 align: str = 'both',
                 smooth_l1_beta: float = 1.0,
                 teacher_weighting: str = 'fixed',
                 shared_projector: bool = False,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        super().__init__(
            backbone=backbone,
            data_preprocessor=data_preprocessor,
            init_cfg=init_cfg)
        self.mask_ratio = check_mask_ratio(mask_ratio, 'MOMA.mask_ratio')
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

    def extract_feat(self, inputs: Tensor) -> tuple:
        """Student features of unmasked images (kNN, fine-tuning checks)."""
        return self.backbone(inputs)

    def student_split(self,
                      batch_size: int,
                      num_tokens: int,
                      device: Optional[torch.device] = None,
                      generator: Optional[torch.Generator] = None
                      ) -> TokenSplit:
        """The student's mask of one view: ``mask_ratio`` of the patches
        hidden, a new random set per image (``x ⊙ M`` of Eq. 3).

        Args:
            batch_size (int): B.
            num_tokens (int): N, patch tokens per image.
            device (torch.device, optional): device of the indices.
            generator (torch.Generator, optional): random generator.

        Returns:
            TokenSplit: visible ``ids_keep`` (B, N_keep) and masked ids.
        """
        return random_token_split(batch_size, num_tokens, self.mask_ratio,
                                  device=device, generator=generator)

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
            tokens, resolution = self.backbone.embed_patches(views[view])
            split = self.student_split(tokens.shape[0], tokens.shape[1],
                                       tokens.device)
            encoded = self.backbone.encode(
                gather_tokens(tokens, split.ids_keep), resolution)[-1]
            students[view] = (encoded, split.ids_keep)

        losses: Dict[str, Tensor] = {}
        for name, teacher in self.teachers.items():
            # (B, P + N, C_t), N ∘ T(x): the whole (unmasked) teacher view
            target = teacher(views[self.teacher_views[name]])[-1]
            student, ids_keep = students[self.student_views[name]]
            prediction = self.projectors[name](student)  # P ∘ S(x ⊙ M)
            prediction, target = self._aligned(prediction, target, ids_keep)
            losses[name] = smooth_l1_alignment(prediction, target,
                                               self.smooth_l1_beta)
        return self._weighted(losses)

    def _aligned(self, prediction: Tensor, target: Tensor,
                 ids_keep: Tensor) -> tuple:
        """Pick the token pairs to align according to ``self.align``.

        Args:
            prediction (Tensor): (B, 1 + K, C) projected student tokens
                (CLS first, then the K visible tokens in ``ids_keep`` order).
            target (Tensor): (B, 1 + N, C) teacher tokens (CLS first).
            ids_keep (Tensor): (B, K) patch indices of the visible tokens.

        Returns:
            tuple[Tensor, Tensor]: matching (B, L, C) predictions / targets.
        """
        if self.align == 'cls':
            return prediction[:, :1], target[:, :1]
        visible_target = gather_tokens(target[:, 1:], ids_keep)
        if self.align == 'visible':
            return prediction[:, 1:], visible_target
        return prediction, torch.cat([target[:, :1], visible_target], dim=1)

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
