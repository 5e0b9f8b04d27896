"""MimCo's contrastive head: one level (patch or image) of its loss.

For a student feature map z and the teacher's zₖ, both (B, C, h, w)::

    patch   qᵢ = p₂(p₁(z))ᵢ,  kᵢ₊ = p₃(zₖ)ᵢ / ‖p₃(zₖ)ᵢ‖   at the loss cells i
    image   q  = p₂(p₁(GAP z)), k₊ = p₃(GAP zₖ) / ‖p₃(GAP zₖ)‖
    loss    L = 1/N Σ −log e^{q·k₊/τ} / (e^{q·k₊/τ} + Σⱼ e^{q·kⱼ/τ})
            over the N queries, kⱼ the queue's keys before this step
    queue   patch: per image, normalize(mean of its kᵢ over all / the
            loss cells); image: k₊
    ℓ1      (patch only) L = mean |p₂(p₁(z))ᵢ − zₖᵢ| at the loss cells; no
            p₃, no queue

p₃ is a frozen copy of p₁ that follows it by EMA (``p₃ ← m·p₃ + (1 − m)·p₁``,
declared by the owner's ``MomentumTarget`` through :attr:`momentum_pairs`).
"""
import copy
from typing import Dict, Optional

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS
from torch import Tensor, nn

from ..losses import queue_info_nce
from ..masking.indices import gather_tokens
from ..utils.config_fill import fill_channels
from ..utils.key_queue import KeyQueue
from ..utils.momentum import ema_update_

LEVELS = ('patch', 'image')


def moby_mlp(with_avg_pool: bool, **widths: int) -> dict:
    """MoBY's 2-layer MLP (Linear → BN → ReLU → Linear, hidden 4096) as
    mmpretrain's ``NonLinearNeck`` config (MimCo's image heads)."""
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


def patch_queue_key(keys: Tensor, cells: Tensor, over: str = 'all') -> Tensor:
    """One patch-queue key per image: the mean of its normalised keys over
    ``'all'`` its cells (MimCo §3.2) or its ``'masked'`` ones (Algorithm 1:
    ``mean(z_k^p[m])``, image by image), re-normalised.

    Args:
        keys (Tensor): (B, D, h, w) L2-normalised momentum-projector keys.
        cells (Tensor): bool (B, h, w), True = masked (used by
            ``'masked'``).
        over (str): ``'all'`` or ``'masked'``.

    Returns:
        Tensor: (B, D) unit keys.
    """
    if over == 'all':
        mean = keys.mean(dim=(2, 3))
    else:
        chosen = cells[:, None].to(keys.dtype)
        mean = (keys * chosen).sum(dim=(2, 3)) / chosen.sum(dim=(2, 3))
    return F.normalize(mean, dim=1)


def loss_cell_ids(cells: Tensor, cells_per_sample: int) -> Tensor:
    """The row-major indices of each sample's loss cells, on the device.

    Args:
        cells (Tensor): bool (B, h, w) with ``cells_per_sample`` True cells
            in every sample.
        cells_per_sample (int): k.

    Returns:
        Tensor: (B, k) long indices into the h·w cells, ascending (True
        cells first under a stable sort).
    """
    return torch.argsort((~cells).flatten(1).to(torch.uint8), dim=1,
                         stable=True)[:, :cells_per_sample]


@MODELS.register_module()
class MomentumContrastHead(BaseModule):
    """Projector p₁, predictor p₂, momentum projector p₃ and key queue of
    one MimCo level, and that level's loss (equations in the module
    docstring).

    The levels differ only in how the necks are called and which rows enter
    the loss: ``'patch'`` necks map (B, C, h, w) → (B, D, h, w) (e.g.
    ``ConvProjector``) and the loss takes the cells of ``cells``; ``'image'``
    necks take and return a 1-tuple as mmpretrain's ``NonLinearNeck`` (p₁
    pools the map) and the loss takes every image.

    Args:
        projector (dict): p₁ config; ``in_channels`` is filled in, its
            ``out_channels`` (required) is the key width D.
        predictor (dict): p₂ config; ``in_channels`` (D) and
            ``out_channels`` (D, or ``target_channels`` for ℓ1) are filled
            in. A filled-in width that the config sets otherwise is an
            error.
        in_channels (int): C, the width of z (and of zₖ for p₃).
        level (str): ``'patch'`` or ``'image'``. Defaults to ``'patch'``.
        loss (str): ``'contrastive'`` (InfoNCE against the queue) or
            ``'l1'`` (patch level only; no p₃, no queue). Defaults to
            ``'contrastive'``.
        target_channels (int, optional): C_t, the teacher's width, that p₂
            predicts under ``'l1'``.
        queue_length (int): K of the queue. Defaults to 4096.
        queue_key (str): patch level: the cells averaged into an image's
            queue key, ``'all'`` or ``'masked'`` (:func:`patch_queue_key`).
            Defaults to ``'all'``.
        temperature (float): τ. Defaults to 0.2.
        name (str): prefix of the config fields named in errors:
            ``{name}_projector``, ``{name}_predictor``,
            ``{name}_queue_length`` (MimCo: ``'MimCo.patch'``).
        init_cfg (dict, optional): mmengine init config.
    """

    def __init__(self,
                 projector: dict,
                 predictor: dict,
                 in_channels: int,
                 level: str = 'patch',
                 loss: str = 'contrastive',
                 target_channels: Optional[int] = None,
                 queue_length: int = 4096,
                 queue_key: str = 'all',
                 temperature: float = 0.2,
                 name: str = 'MomentumContrastHead',
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        losses = ('contrastive', 'l1') if level == 'patch' else \
            ('contrastive', )
        if level not in LEVELS or loss not in losses or (
                loss == 'l1') != (target_channels is not None):
            raise ValueError(
                f'{type(self).__name__}: level must be one of {LEVELS}, '
                f'loss one of {losses} and target_channels given exactly '
                f'for l1; got level={level!r}, loss={loss!r}, '
                f'target_channels={target_channels!r}')
        self.level, self.loss_type = level, loss
        self.queue_key = queue_key
        self.temperature = float(temperature)
        if 'out_channels' not in projector:
            raise ValueError(f'{name}_projector needs out_channels (the key '
                             'width), e.g. 256')
        key_channels = int(projector['out_channels'])
        self.projector = MODELS.build(
            fill_channels(projector, f'{name}_projector',
                          in_channels=in_channels))
        # p2 maps back into the key space of p3 (= p1's output), or, for the
        # l1 ablation, onto the teacher's feature map
        self.predictor = MODELS.build(
            fill_channels(predictor, f'{name}_predictor',
                          in_channels=key_channels,
                          out_channels=target_channels or key_channels))
        if loss == 'contrastive':
            self.momentum_projector = copy.deepcopy(
                self.projector).requires_grad_(False)
            self.queue = KeyQueue(queue_length, key_channels,
                                  f'{name}_queue_length')

    @property
    def momentum_pairs(self) -> Dict[str, str]:
        """``average -> source`` submodule paths in this head for the
        owner's ``MomentumTarget`` (none under ℓ1)."""
        return {'momentum_projector': 'projector'} \
            if self.loss_type == 'contrastive' else {}

    def init_weights(self) -> None:
        """Initialise, then start p₃ as an exact copy of p₁."""
        super().init_weights()
        for average, source in self.momentum_pairs.items():
            ema_update_(self.get_submodule(average),
                        self.get_submodule(source), 0.0)

    def _project(self, neck: nn.Module, features: Tensor) -> Tensor:
        """A neck on features: patch (B, C, h, w) → (B, D, h, w); image
        (B, C, h, w) or (B, C) → (B, D), through a 1-tuple."""
        return neck(features) if self.level == 'patch' else \
            neck((features, ))[0]

    def _rows(self, features: Tensor, cells: Optional[Tensor],
              cell_ids: Optional[Tensor]) -> Tensor:
        """The rows of the loss: patch (B, D, h, w) → (M, D) at the M cells
        of ``cells`` (sample-major, row-major within a sample); image
        (B, D) as it is.

        With ``cell_ids`` ((B, k) from :func:`loss_cell_ids`, M = B·k) the
        rows are gathered by index, on the device; without, by boolean
        indexing, which reads M back to the host (a GPU sync).
        """
        if self.level != 'patch':
            return features
        rows = features.permute(0, 2, 3, 1)
        if cell_ids is None:
            return rows[cells]
        return gather_tokens(rows.flatten(1, 2), cell_ids).flatten(0, 1)

    def loss(self,
             student: Tensor,
             teacher: Tensor,
             cells: Optional[Tensor] = None,
             cells_per_sample: Optional[int] = None) -> Tensor:
        """This level's loss; enqueues this step's keys (contrastive).

        Args:
            student (Tensor): (B, C, h, w) student feature map z.
            teacher (Tensor): (B, C, h, w) teacher feature map zₖ (C_t
                channels under ℓ1).
            cells (Tensor, optional): bool (B, h, w), True = a cell of the
                loss (patch level; unused at the image level).
            cells_per_sample (int, optional): k, the True cells of every
                sample of ``cells`` (the same for all samples). Given, the
                step reads nothing back to the host; None: the count is read
                from ``cells``.

        Returns:
            Tensor: scalar loss.
        """
        cell_ids = None if cells_per_sample is None or \
            self.level != 'patch' else loss_cell_ids(cells, cells_per_sample)
        query = self._rows(
            self._project(self.predictor,
                          self._project(self.projector, student)), cells,
            cell_ids)
        if self.loss_type == 'l1':
            target = self._rows(teacher, cells, cell_ids)
            return F.l1_loss(query, target.to(query.dtype))
        with torch.no_grad():
            keys = F.normalize(
                self._project(self.momentum_projector, teacher), dim=1)
        loss = queue_info_nce(query,
                              self._rows(keys, cells, cell_ids),
                              self.queue.keys.clone(), self.temperature)
        self.queue.enqueue(keys if self.level == 'image' else
                           patch_queue_key(keys, cells, self.queue_key))
        return loss
