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
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from torch import Tensor, nn

from ..backbones.masked_vit import MaskedViT
from ..losses.siamese import multi_query_byol_loss, multi_query_info_nce
from ..masking import EncoderInput, ShuffledChunks, build_mask_generator
from ..utils.config_fill import fill_channels
from ..utils.momentum import MomentumTarget, WithMomentumTarget
from ..utils.von_mises_fisher import spherical_mean
from .base import MaskedPretrainer


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


class MaskedSiamese(WithMomentumTarget, MaskedPretrainer):
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
        num_chunks (int, optional): n, chunks of the online view (1 = full
            view): the default ``ShuffledChunks`` generator. Defaults to 8
            (the paper's choice, §3.2).
        num_target_chunks (int, optional): m, chunks of the target view,
            combined by the spherical mean (Eq. 4). Defaults to 1.
        mask_generator (dict, optional): any registered mask generator for
            the online view instead of n chunks (its groups are the chunks;
            ``num_chunks`` must then be left out), e.g. SimMIM blocks.
        target_mask_generator (dict, optional): likewise for the target
            view instead of m chunks.
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

    def __init__(self,
                 backbone: dict,
                 neck: dict,
                 predictor: dict,
                 num_chunks: Optional[int] = None,
                 num_target_chunks: Optional[int] = None,
                 mask_generator: Optional[dict] = None,
                 target_mask_generator: Optional[dict] = None,
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
        grid = self.backbone.patch_resolution
        for attr, given, default, generator_cfg, generator_field in (
                ('num_chunks', num_chunks, 8, mask_generator,
                 'mask_generator'),
                ('num_target_chunks', num_target_chunks, 1,
                 target_mask_generator, 'target_mask_generator')):
            if given is not None:
                check_num_chunks(given, prod(grid), f'{name}.{attr}')
            built = build_mask_generator(
                generator_cfg,
                dict(type='ShuffledChunks',
                     num_chunks=default if given is None else given,
                     field=f'{name}.{attr}'), f'{name}.{generator_field}',
                grid, {f'{name}.{attr}': given})
            setattr(self, generator_field, built)
            # n / m: the groups of the generator's plans (1 for a mask)
            setattr(self, attr, built(
                1, grid, generator=torch.Generator().manual_seed(0)
            ).num_groups)
        self.predictor = MODELS.build(predictor)
        self.cross_attention = None if cross_attention is None else \
            MODELS.build(cross_attention)
        self.momentum_encoder = nn.ModuleDict({
            part: copy.deepcopy(module)
            for part, module in self.online_encoder().items()
        })
        # MoCo v3: the momentum encoder after every iteration
        self.momentum_target = MomentumTarget(
            self, {f'momentum_encoder.{part}': part
                   for part in self.online_encoder()},
            base_momentum, end_momentum, update='iter',
            transfer_encoder='momentum_encoder.backbone')
        self.momentum_target.freeze_averages()
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
    # chunked encoding
    # ------------------------------------------------------------------
    def encoder_inputs(self, views: List[Tensor],
                       generator: torch.Generator) -> tuple:
        """What each encoder sees (the masking visualiser's protocol)."""
        if len(views) != 2:
            raise ValueError(f'{type(self).__name__} needs two views, the '
                             f'pipeline gives {len(views)}')
        inputs = [
            EncoderInput(title, view,
                         self.plan(views[view], generator, mask_generator),
                         group_name='chunk')
            for title, view, mask_generator in (
                ('online encoder, view 0', 0, self.mask_generator),
                ('momentum encoder (target), view 1', 1,
                 self.target_mask_generator))
        ]
        return inputs, [
            f'online: {self.mask_generator!r}, target: '
            f'{self.target_mask_generator!r}; the loss pairs view 0\'s '
            "queries with view 1's keys and the other way round"]

    def encode_chunks(self,
                      images: Tensor,
                      num_chunks: int,
                      encoder: Optional[Dict[str, nn.Module]] = None,
                      generator: Optional[torch.Generator] = None,
                      field: str = 'num_chunks') -> ChunkOutputs:
        """Encode each image as ``num_chunks`` shuffled chunks (see
        :meth:`encode`; ``field`` is the config field errors name)."""
        chunks = ShuffledChunks(num_chunks, f'{type(self).__name__}.{field}')
        return self.encode(images, chunks, encoder, generator)

    def encode(self,
               images: Tensor,
               mask_generator,
               encoder: Optional[Dict[str, nn.Module]] = None,
               generator: Optional[torch.Generator] = None) -> ChunkOutputs:
        """Encode each image as the groups of ``mask_generator``'s plan
        (n chunks), each an independent token sequence with its own CLS.

        Args:
            images (Tensor): (B, 3, H, W) one view.
            mask_generator: draws the chunks (``self.mask_generator`` or
                ``self.target_mask_generator``).
            encoder (dict, optional): the parts to use (default: the online
                encoder; ``self.momentum_encoder`` for keys).
            generator (torch.Generator, optional): draws the shuffle.

        Returns:
            ChunkOutputs: chunk ids, tokens, rep and projections.
        """
        encoder = self.online_encoder() if encoder is None else encoder
        backbone = encoder['backbone']
        plan = self.plan(images, generator, mask_generator)
        batch_size, num_chunks = plan.visible.shape[:2]
        tokens = backbone(images, token_ids=plan.visible_ids,
                          num_groups=num_chunks)[-1]  # (B·n, 1 + L, C)
        if 'cross_attention' in encoder:
            pooled = encoder['cross_attention'](tokens)
        else:
            pooled = tokens[:, 0]
        projection = encoder['neck'](pooled)
        rep = tokens[:, backbone.num_prefix_tokens:].mean(dim=1)
        return ChunkOutputs(plan.visible, tokens,
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
        keys = self.encode(images, self.target_mask_generator,
                           self.momentum_encoder).projection
        if keys.shape[1] == 1:
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
        online = [self.encode(view, self.mask_generator) for view in inputs]
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
