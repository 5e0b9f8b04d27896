"""M-MoCo / M-BYOL: MoCo v3 and BYOL whose online encoder sees chunks.

Paper: "An Improved Baseline for Masked Contrastive Learning" (M-MoCo),
§3.2–3.4. There is no public code; MoCo v3's official choices (see
``shared/NOTES.md``) fill the gaps.

For two augmented views v₁, v₂ of an image::

    online    shuffle the N patches of v and cut them into n equal chunks
              c₁ … cₙ (Fig. 2); each chunk, with its own CLS token, is
              encoded as an independent image:
                  zᵢ = g(f(cᵢ)),   qᵢ = h(zᵢ)
              f: ViT (CLS token out), g: projector, h: predictor; optionally
              two class-attention blocks between f and g (Table 3, "CA")
    target    the momentum encoder (EMA of f, [CA,] g) on the full view,
              or on m chunks whose keys are combined (Eq. 4):
                  k̂ = Σⱼ kⱼ / ‖Σⱼ kⱼ‖₂
    loss      L = (1/n) Σᵢ L(qᵢ, k)                              (Eq. 3)
              over both (query view, key view) pairs, summed (MoCo v3)
              M-MoCo: L = 2τ · InfoNCE(q, k), the keys of all processes
                      as candidates                                (Eq. 1)
              M-BYOL: L = 2 − 2 q·k                                (Eq. 2)
    momentum  ξ ← m·ξ + (1 − m)·θ after every iteration, m on a cosine from
              0.99 to 1 (MoCo v3; ``TeacherEMAHook``)

With n = m = 1 this is MoCo v3 / BYOL: one chunk is the whole view in
row-major order, the plain ViT forward.
"""
import copy
from math import prod
from typing import Dict, List, NamedTuple, Optional, Union

import torch
from mmpretrain.models.selfsup import BaseSelfSupervisor
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from torch import Tensor, nn

from ..backbones.masked_vit import MaskedViT
from ..losses.siamese import multi_query_byol_loss, multi_query_info_nce
from ..utils.config_fill import fill_channels
from ..utils.momentum import check_unit_interval, cosine_momentum, ema_update_
from ..utils.token_selection import gather_tokens, shuffled_chunks
from ..utils.von_mises_fisher import spherical_mean


class ChunkOutputs(NamedTuple):
    """One view encoded in chunks.

    Attributes:
        token_ids (Tensor): (B, n, L) patch indices of each chunk.
        tokens (Tensor): (B·n, 1 + L, C) last-block outputs, CLS first; row
            ``b·n + i`` is chunk i of image b.
        rep (Tensor): (B, n, C) average of each chunk's patch tokens (the
            paper's "rep" layer, §3.4).
        projection (Tensor): (B, n, D) projector outputs z.
    """
    token_ids: Tensor
    tokens: Tensor
    rep: Tensor
    projection: Tensor


def check_num_chunks(value: int, num_patches: int, name: str) -> int:
    """Validate a chunk count n: an int in [1, N].

    Args:
        value (int): the configured count.
        num_patches (int): N, patches per image at the backbone's img_size.
        name (str): the config field named in the error.

    Returns:
        int: the count.
    """
    if isinstance(value, bool) or not isinstance(value, int) or \
            not 1 <= value <= num_patches:
        raise ValueError(
            f'{name} must be an int in [1, {num_patches}] (1 = the full '
            f'view; at most one patch per chunk for the backbone\'s '
            f'{num_patches} patches), got {value!r}')
    return value


class MaskedSiamese(BaseSelfSupervisor):
    """Chunked online encoder, momentum target encoder, n queries per key.

    The shared machinery of :class:`MaskedMoCoV3` and :class:`MaskedBYOL`,
    which differ only in :meth:`pair_loss`.

    Args:
        backbone (dict): a ``MaskedViT`` with a CLS token, e.g.
            ``MaskedMoCoV3ViT`` (MoCo v3's init; ``stop_grad_conv1=True``
            is MoCo v3's frozen patch embedding).
        neck (dict): the projector g, e.g. ``NormMLP`` (3 layers, 4096 →
            256, LayerNorm); ``in_channels`` is filled in with the
            backbone's width.
        predictor (dict): the predictor h, e.g. ``NormMLP`` (2 layers);
            ``in_channels`` and ``out_channels`` are filled in with the
            projector's ``out_channels`` (it predicts the key).
        num_chunks (int): n, chunks of the online view (1 = full view).
            Defaults to 8 (the paper's choice, §3.2).
        num_target_chunks (int): m, chunks of the target view, combined by
            the spherical mean (Eq. 4). Defaults to 1.
        cross_attention (dict, optional): blocks between backbone and
            projector that pool the tokens into one vector, e.g.
            ``ClassAttentionBlocks`` (Table 3 "LN + CA"; ``embed_dims`` is
            filled in). None (default):
            the CLS token goes to the projector.
        base_momentum (float): momentum m at the start. Defaults to 0.99.
        end_momentum (float): momentum m at the end. Defaults to 1.0.
        data_preprocessor (dict, optional): defaults to
            ``SelfSupDataPreprocessor``.
        init_cfg (dict | list[dict], optional): init config.
    """

    #: When ``TeacherEMAHook`` updates the momentum encoder (MoCo v3: every
    #: iteration).
    momentum_update = 'iter'

    def __init__(self,
                 backbone: dict,
                 neck: dict,
                 predictor: dict,
                 num_chunks: int = 8,
                 num_target_chunks: int = 1,
                 cross_attention: Optional[dict] = None,
                 base_momentum: float = 0.99,
                 end_momentum: float = 1.0,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        name = type(self).__name__
        if not isinstance(backbone, nn.Module):
            backbone = MODELS.build(backbone)
        if not isinstance(backbone, MaskedViT):
            raise ValueError(
                f'{name}.backbone must be a MaskedViT (e.g. type='
                f"'MaskedMoCoV3ViT'): chunks are encoded with its grouped "
                f'forward; got {type(backbone).__name__}')
        # widths follow the backbone: projector in = C, predictor D -> D
        neck = fill_channels(neck, f'{name}.neck',
                             in_channels=backbone.embed_dims)
        key_dims = neck.get('out_channels')
        predictor = fill_channels(predictor, f'{name}.predictor',
                                  in_channels=key_dims,
                                  out_channels=key_dims)
        if cross_attention is not None:
            cross_attention = fill_channels(
                cross_attention, f'{name}.cross_attention',
                embed_dims=backbone.embed_dims)
        super().__init__(
            backbone=backbone,
            neck=neck,
            data_preprocessor=data_preprocessor,
            init_cfg=init_cfg)
        if not self.backbone.with_cls_token:
            raise ValueError(f'{name}.backbone needs a CLS token (every '
                             'chunk gets its own, §3.2); set '
                             'with_cls_token=True')
        num_patches = prod(self.backbone.patch_resolution)
        self.num_chunks = check_num_chunks(num_chunks, num_patches,
                                           f'{name}.num_chunks')
        self.num_target_chunks = check_num_chunks(num_target_chunks,
                                                  num_patches,
                                                  f'{name}.num_target_chunks')
        self.predictor = MODELS.build(predictor)
        self.cross_attention = None if cross_attention is None else \
            MODELS.build(cross_attention)
        self.base_momentum = check_unit_interval(base_momentum,
                                                 f'{name}.base_momentum')
        self.end_momentum = check_unit_interval(end_momentum,
                                                f'{name}.end_momentum')
        self.momentum_encoder = nn.ModuleDict({
            part: copy.deepcopy(module)
            for part, module in self.online_encoder().items()
        })
        self.momentum_encoder.requires_grad_(False)
        # set by ConcentrationMonitorHook: loss() then stores the chunk
        # representations (B', n, d) of both views in chunk_features
        self.record_chunk_features = False
        self.chunk_features: Optional[Dict[str, Tensor]] = None

    def online_encoder(self) -> Dict[str, nn.Module]:
        """The trained encoder's parts: backbone, [cross_attention,] neck."""
        parts = {'backbone': self.backbone, 'neck': self.neck}
        if self.cross_attention is not None:
            parts['cross_attention'] = self.cross_attention
        return parts

    def init_weights(self) -> None:
        """Initialise, then start the momentum encoder as an exact copy."""
        super().init_weights()
        self.update_teacher(0.0)

    # ------------------------------------------------------------------
    # momentum encoder (driven by TeacherEMAHook)
    # ------------------------------------------------------------------
    def teacher_momentum(self, progress: float) -> float:
        """The scheduled momentum m at ``progress`` = iter / max_iters."""
        return cosine_momentum(self.base_momentum, self.end_momentum,
                               progress)

    @torch.no_grad()
    def update_teacher(self, momentum: float) -> None:
        """ξ ← m·ξ + (1 − m)·θ for every part of the momentum encoder.

        Args:
            momentum (float): m in [0, 1]; 0 copies the online encoder.
        """
        for part, module in self.online_encoder().items():
            ema_update_(self.momentum_encoder[part], module, momentum)

    # ------------------------------------------------------------------
    # chunked encoding
    # ------------------------------------------------------------------
    def chunk_ids(self,
                  batch_size: int,
                  num_tokens: int,
                  num_chunks: int,
                  device: Optional[torch.device] = None,
                  generator: Optional[torch.Generator] = None,
                  field: str = 'num_chunks') -> Tensor:
        """Shuffle each image's patches and cut them into ``num_chunks``
        chunks (§3.2; see :func:`shuffled_chunks`).

        Args:
            batch_size (int): B.
            num_tokens (int): N, patch tokens per image.
            num_chunks (int): n (1: the full view, row-major).
            device (torch.device, optional): device of the indices.
            generator (torch.Generator, optional): draws the shuffle.
            field (str): the config field errors name.

        Returns:
            Tensor: (B, n, N // n) patch indices; the ``N % n`` left-over
            patches of the shuffle are in no chunk.
        """
        token_ids, _ = shuffled_chunks(batch_size, num_tokens, num_chunks,
                                       f'{type(self).__name__}.{field}',
                                       device, generator)
        return token_ids

    def encode_chunks(self,
                      images: Tensor,
                      num_chunks: int,
                      encoder: Optional[Dict[str, nn.Module]] = None,
                      generator: Optional[torch.Generator] = None,
                      field: str = 'num_chunks') -> ChunkOutputs:
        """Encode each image as ``num_chunks`` independent token sequences.

        Args:
            images (Tensor): (B, 3, H, W) one view.
            num_chunks (int): n (1: the full view, row-major).
            encoder (dict, optional): the parts to use (default: the online
                encoder; ``self.momentum_encoder`` for keys).
            generator (torch.Generator, optional): draws the shuffle.
            field (str): the config field errors name (``'num_chunks'`` or
                ``'num_target_chunks'``).

        Returns:
            ChunkOutputs: chunk ids, tokens, rep and projections.
        """
        encoder = self.online_encoder() if encoder is None else encoder
        backbone = encoder['backbone']
        tokens, patch_resolution = backbone.embed_patches(images)
        batch_size = tokens.shape[0]
        token_ids = self.chunk_ids(batch_size, tokens.shape[1], num_chunks,
                                   tokens.device, generator, field)
        tokens = backbone.encode(
            gather_tokens(tokens, token_ids.flatten(1)), patch_resolution,
            num_chunks)[-1]  # (B·n, 1 + L, C)
        if 'cross_attention' in encoder:
            pooled = encoder['cross_attention'](tokens)
        else:
            pooled = tokens[:, 0]
        projection = encoder['neck'](pooled)
        rep = tokens[:, backbone.num_prefix_tokens:].mean(dim=1)
        return ChunkOutputs(token_ids, tokens,
                            rep.view(batch_size, num_chunks, -1),
                            projection.view(batch_size, num_chunks, -1))

    @torch.no_grad()
    def target_keys(self, images: Tensor) -> Tensor:
        """k (m = 1) or the spherical mean k̂ of m chunk keys (Eq. 4).

        Args:
            images (Tensor): (B, 3, H, W) one view.

        Returns:
            Tensor: (B, D) keys (unnormalised for m = 1; the losses
            normalise).
        """
        keys = self.encode_chunks(
            images,
            self.num_target_chunks,
            self.momentum_encoder,
            field='num_target_chunks').projection
        if self.num_target_chunks == 1:
            return keys[:, 0]
        return spherical_mean(keys, dim=1)

    def predict_queries(self, projection: Tensor) -> Tensor:
        """q = h(z) per chunk.

        Args:
            projection (Tensor): (B, n, D) projector outputs.

        Returns:
            Tensor: (B, n, D') predictor outputs.
        """
        return self.predictor(projection.flatten(0, 1)).view(
            *projection.shape[:2], -1)

    def pair_loss(self, queries: Tensor, keys: Tensor) -> Tensor:
        """L(q, k) averaged over the n queries of each image (Eq. 3).

        Args:
            queries (Tensor): (B, n, D) queries of one view.
            keys (Tensor): (B, D) keys of the other view.

        Returns:
            Tensor: scalar.
        """
        raise NotImplementedError

    def loss(self, inputs: List[Tensor], data_samples: List[DataSample],
             **kwargs) -> Dict[str, Tensor]:
        """Symmetric chunked loss over the two views.

        Args:
            inputs (list[Tensor]): two (B, 3, H, W) views of the same images.
            data_samples (list[DataSample]): unused.

        Returns:
            dict[str, Tensor]: ``loss``.
        """
        if not isinstance(inputs, (list, tuple)) or len(inputs) != 2:
            raise ValueError(
                f'{type(self).__name__} needs two views of every image '
                "(a two-view pipeline such as ContrastiveViews or "
                f'MultiView), got {len(inputs)} input tensor(s)'
                if isinstance(inputs, (list, tuple)) else
                f'{type(self).__name__} needs a list of two views, got a '
                f'{type(inputs).__name__}')
        online = [self.encode_chunks(view, self.num_chunks) for view in inputs]
        queries = [self.predict_queries(out.projection) for out in online]
        keys = [self.target_keys(view) for view in inputs]
        loss = self.pair_loss(queries[0], keys[1]) + \
            self.pair_loss(queries[1], keys[0])
        if self.record_chunk_features:
            self.chunk_features = {
                'rep': torch.cat([out.rep for out in online]).detach(),
                'projector':
                torch.cat([out.projection for out in online]).detach(),
                'predictor': torch.cat(queries).detach(),
            }
        return dict(loss=loss)


@MODELS.register_module()
class MaskedMoCoV3(MaskedSiamese):
    """M-MoCo: MoCo v3 with n online chunks and m target chunks.

    Args:
        temperature (float): τ > 0. Defaults to 0.2 (MoCo v3, ViT).
        **kwargs: see :class:`MaskedSiamese`.
    """

    def __init__(self, *args, temperature: float = 0.2, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if isinstance(temperature, bool) or not isinstance(
                temperature, (int, float)) or not temperature > 0:
            raise ValueError(f'MaskedMoCoV3.temperature must be a number '
                             f'> 0, got {temperature!r}')
        self.temperature = float(temperature)

    def pair_loss(self, queries: Tensor, keys: Tensor) -> Tensor:
        """2τ · InfoNCE (Eq. 1) averaged over the n queries (Eq. 3)."""
        return 2 * self.temperature * multi_query_info_nce(
            queries, keys, self.temperature)


@MODELS.register_module()
class MaskedBYOL(MaskedSiamese):
    """M-BYOL: BYOL with n online chunks and m target chunks.

    The predictor should have no output norm (the paper, §3.1: "critical to
    remove the BN for the output fc of the predictor").

    Args:
        **kwargs: see :class:`MaskedSiamese`.
    """

    def pair_loss(self, queries: Tensor, keys: Tensor) -> Tensor:
        """2 − 2 q·k (Eq. 2) averaged over the n queries (Eq. 3)."""
        return multi_query_byol_loss(queries, keys)
