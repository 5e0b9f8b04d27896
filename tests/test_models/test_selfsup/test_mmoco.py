"""M-MoCo / M-BYOL (tiny ViT, 32 px, patch 4: 64 patches): chunked
encoding, parity with mmpretrain's MoCo v3 at n = m = 1, Eq. 1–4 by hand,
the momentum encoder, LN heads, cross attention, errors, resume."""
import math
from typing import Dict, List

import pytest
import torch
import torch.nn.functional as F
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from mmmoma.models.selfsup import MaskedBYOL, MaskedMoCoV3
from mmmoma.models.selfsup.mmoco import check_num_chunks

ARCH = dict(embed_dims=64, num_layers=2, num_heads=4, feedforward_channels=128)
TAU = 0.2
PATCHES, PATCH, GRID = 64, 4, 8  # 32 px / 4 px patches = 8 x 8 patches
DIMS = 32  # projector / predictor output width


def tiny_cfg(kind: str = 'MaskedMoCoV3', norm: str = 'LN',
             backbone: dict = None, **overrides) -> dict:
    """A tiny M-MoCo / M-BYOL: 3-layer projector 64 → 128 → 32, 2-layer
    predictor 32 → 128 → 32 (BYOL: no output norm), n = 4."""
    cfg = dict(
        type=kind,
        backbone=dict(
            type='MaskedMoCoV3ViT',
            arch=ARCH,
            img_size=32,
            patch_size=PATCH,
            **(backbone or {})),
        neck=dict(
            type='NormMLP',
            in_channels=64,
            hid_channels=128,
            out_channels=DIMS,
            num_layers=3,
            norm_cfg=dict(type=norm)),
        predictor=dict(
            type='NormMLP',
            in_channels=DIMS,
            hid_channels=128,
            out_channels=DIMS,
            num_layers=2,
            norm_cfg=dict(type=norm),
            with_last_norm=kind != 'MaskedBYOL'),
        num_chunks=4)
    cfg.update(overrides)
    return cfg


def build(seed: int = 0, **kwargs):
    torch.manual_seed(seed)
    model = MODELS.build(tiny_cfg(**kwargs))
    model.init_weights()
    return model


def make_views(batch: int = 4, seed: int = 0) -> List[Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, 3, 32, 32, generator=g) for _ in range(2)]


def snapshot(module: nn.Module) -> Dict[str, Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def patch_pixels(patch: int):
    row, col = divmod(patch, GRID)
    return (slice(None), slice(PATCH * row, PATCH * (row + 1)),
            slice(PATCH * col, PATCH * (col + 1)))


def per_patch(pixels: Tensor) -> Tensor:
    """(3, 32, 32) → (64,) summed |values| of each patch, row-major."""
    return pixels.abs().reshape(3, GRID, PATCH, GRID, PATCH).sum(
        dim=(0, 2, 4)).flatten()


def moco_loss_by_hand(queries: Tensor, keys: Tensor, tau: float) -> float:
    """Mean over images b and chunks i of −log softmax(q̂_{b,i}·K̂/τ)[b]
    (float64, written out)."""
    keys = F.normalize(keys.double(), dim=1)
    terms = []
    for b in range(queries.shape[0]):
        for i in range(queries.shape[1]):
            q = queries[b, i].double()
            logits = [float(q / q.norm() @ k) / tau for k in keys]
            terms.append(-logits[b] +
                         math.log(sum(math.exp(x) for x in logits)))
    return sum(terms) / len(terms)


def byol_loss_by_hand(queries: Tensor, keys: Tensor) -> float:
    terms = []
    for b in range(queries.shape[0]):
        k = keys[b].double()
        for i in range(queries.shape[1]):
            q = queries[b, i].double()
            terms.append(2 - 2 * float(q @ k) / float(q.norm() * k.norm()))
    return sum(terms) / len(terms)


def spherical_mean_by_hand(keys: Tensor) -> Tensor:
    """(B, m, D) → (B, D): Σⱼ kⱼ/‖kⱼ‖, divided by its norm, per image."""
    out = []
    for b in range(keys.shape[0]):
        total = sum(k / k.norm() for k in keys[b].double())
        out.append(total / total.norm())
    return torch.stack(out)


def replay_loss_inputs(model, views: List[Tensor], seed: int):
    """Queries and keys of ``model.loss`` under ``torch.manual_seed(seed)``,
    recomputed from the parts: the online chunks of view 1, view 2, then
    the target chunks of view 1, view 2 (the order ``loss`` draws them)."""
    g = torch.Generator().manual_seed(seed)
    online = [model.encode_chunks(v, model.num_chunks, generator=g)
              for v in views]
    queries = [model.predict_queries(out.projection) for out in online]
    targets = [
        model.encode_chunks(v, model.num_target_chunks,
                            model.momentum_encoder, generator=g).projection
        for v in views
    ]
    keys = [t[:, 0] if t.shape[1] == 1 else spherical_mean_by_hand(t)
            for t in targets]
    return online, queries, keys


def perturb_momentum_encoder(model, momentum: float = 0.5) -> None:
    """Take a random step on the online encoder, then update the momentum
    encoder halfway, so that the two differ."""
    with torch.no_grad():
        for param in model.parameters():
            if param.requires_grad:
                param.add_(0.05 * torch.randn_like(param))
    model.update_teacher(momentum)


# ----------------------------------------------------------------------
# chunked encoding
# ----------------------------------------------------------------------
def test_one_chunk_is_the_plain_forward_of_the_full_view(one_thread):
    model = build(num_chunks=1)
    x = make_views()[0]
    out = model.encode_chunks(x, 1)
    assert torch.equal(out.token_ids, torch.arange(PATCHES).expand(4, 1, -1))
    cls_token = model.backbone(x)[0]  # VisionTransformer forward, CLS out
    torch.testing.assert_close(out.tokens[:, 0], cls_token, atol=1e-5,
                               rtol=0)
    torch.testing.assert_close(out.projection[:, 0], model.neck(cls_token),
                               atol=1e-5, rtol=0)


def test_every_row_is_its_chunk_encoded_alone(one_thread):
    model = build().eval()
    x = make_views(batch=3)[0]
    g = torch.Generator().manual_seed(0)
    out = model.encode_chunks(x, 4, generator=g)
    assert out.token_ids.shape == (3, 4, 16)
    assert out.tokens.shape == (3 * 4, 1 + 16, 64)
    assert out.rep.shape == (3, 4, 64)
    assert out.projection.shape == (3, 4, DIMS)
    for b in range(3):
        for i in range(4):
            alone = model.backbone(x[b:b + 1],
                                   token_ids=out.token_ids[b, i][None])[-1]
            torch.testing.assert_close(out.tokens[b * 4 + i], alone[0],
                                       atol=1e-5, rtol=0)
            torch.testing.assert_close(out.projection[b, i],
                                       model.neck(alone[:, 0])[0],
                                       atol=1e-5, rtol=0)
            torch.testing.assert_close(out.rep[b, i], alone[0, 1:].mean(0),
                                       atol=1e-5, rtol=0)


@pytest.mark.parametrize('num_chunks', [4, 6])
def test_attention_is_confined_to_each_chunk(one_thread, num_chunks):
    """LN heads: every output row depends on its own chunk only."""
    model = build(num_chunks=num_chunks)
    x = make_views(batch=2)[0]

    def encode(images):
        return model.encode_chunks(images, num_chunks,
                                   generator=torch.Generator().manual_seed(5))

    before = encode(x)
    chunk = 1
    patch = int(before.token_ids[0, chunk, 3])
    edited = x.clone()
    edited[0][patch_pixels(patch)] += torch.randn(3, PATCH, PATCH)
    after = encode(edited)
    assert torch.equal(after.token_ids, before.token_ids)
    changed = chunk  # row b·n + i of image 0, chunk 1
    for row in range(2 * num_chunks):
        same_tokens = torch.equal(after.tokens[row], before.tokens[row])
        same_projection = torch.equal(
            after.projection.flatten(0, 1)[row],
            before.projection.flatten(0, 1)[row])
        assert same_tokens is (row != changed), row
        assert same_projection is (row != changed), row
    if num_chunks == 6:  # 64 = 6 · 10 + 4: a left-out patch changes nothing
        left_out = sorted(set(range(PATCHES)) -
                          set(before.token_ids[0].flatten().tolist()))
        assert len(left_out) == 4
        edited = x.clone()
        edited[0][patch_pixels(left_out[0])] += 5.0
        after = encode(edited)
        assert torch.equal(after.tokens, before.tokens)
        assert torch.equal(after.projection, before.projection)


def test_no_gradient_crosses_chunks(one_thread):
    model = build(num_chunks=4)
    x = make_views(batch=2)[0].requires_grad_(True)
    out = model.encode_chunks(x, 4,
                              generator=torch.Generator().manual_seed(1))
    for j in range(4):
        target = out.projection[0, j].square().sum() + \
            out.tokens[j].square().sum()
        (grad, ) = torch.autograd.grad(target, x, retain_graph=True)
        inside = torch.zeros(PATCHES, dtype=torch.bool)
        inside[out.token_ids[0, j]] = True
        per_patch_grad = per_patch(grad[0])
        assert (per_patch_grad[inside] > 0).all(), j
        assert (per_patch_grad[~inside] == 0).all(), j
        assert (grad[1] == 0).all()  # nor across images


# ----------------------------------------------------------------------
# n = m = 1 is mmpretrain's MoCo v3
# ----------------------------------------------------------------------
def non_linear_neck(in_channels: int, num_layers: int) -> dict:
    return dict(
        type='NonLinearNeck',
        in_channels=in_channels,
        hid_channels=128,
        out_channels=DIMS,
        num_layers=num_layers,
        with_bias=False,
        with_last_bn=True,
        with_last_bn_affine=False,
        with_last_bias=False,
        with_avg_pool=False)  # default norm: SyncBN (runs on CPU)


def neck_state(mlp: nn.Module) -> Dict[str, Tensor]:
    """NormMLP ``norm{i}`` → NonLinearNeck ``bn{i}``."""
    return {k.replace('norm', 'bn'): v for k, v in mlp.state_dict().items()}


def test_one_chunk_equals_mmpretrain_mocov3_loss_and_gradients(one_thread):
    ours = build(norm='BN', num_chunks=1, num_target_chunks=1,
                 temperature=TAU)
    with torch.no_grad():  # affine norm parameters away from (1, 0)
        for name, param in ours.named_parameters():
            if 'norm' in name and param.requires_grad:
                param.copy_(torch.rand_like(param) + 0.5)
    ours.update_teacher(0.0)
    torch.manual_seed(1)
    ref = MODELS.build(
        dict(
            type='MoCoV3',
            backbone=dict(
                type='MoCoV3ViT', arch=ARCH, img_size=32, patch_size=PATCH),
            neck=non_linear_neck(64, 3),
            head=dict(
                type='MoCoV3Head',
                predictor=non_linear_neck(DIMS, 2),
                loss=dict(type='CrossEntropyLoss', loss_weight=2 * TAU),
                temperature=TAU)))
    ref.backbone.load_state_dict(ours.backbone.state_dict(), strict=True)
    ref.neck.load_state_dict(neck_state(ours.neck), strict=True)
    ref.head.predictor.load_state_dict(neck_state(ours.predictor),
                                       strict=True)
    ours.train()
    ref.train()
    views = make_views(batch=6)

    ref_loss = ref.loss(views, None)['loss']  # step 0: momentum ← online
    loss = ours.loss(views, None)['loss']
    assert loss.item() == pytest.approx(ref_loss.item(), rel=1e-5)
    loss.backward()
    ref_loss.backward()
    ref_params = dict(ref.backbone.named_parameters())
    for name, param in ours.backbone.named_parameters():
        if not param.requires_grad:
            assert name == 'pos_embed'
            continue
        assert param.grad is not None and param.grad.abs().sum() > 0, name
        torch.testing.assert_close(param.grad, ref_params[name].grad,
                                   atol=1e-6, rtol=1e-4, msg=name)
    for ours_head, ref_head in ((ours.neck, ref.neck),
                                (ours.predictor, ref.head.predictor)):
        ref_grads = {k.replace('bn', 'norm'): p.grad
                     for k, p in ref_head.named_parameters()}
        for name, param in ours_head.named_parameters():
            torch.testing.assert_close(param.grad, ref_grads[name],
                                       atol=1e-6, rtol=1e-4, msg=name)


# ----------------------------------------------------------------------
# keys: the spherical mean of m chunk keys (Eq. 4)
# ----------------------------------------------------------------------
@pytest.mark.parametrize('num_target_chunks', [2, 4])
def test_target_keys_are_the_spherical_mean_of_chunk_keys(
        one_thread, num_target_chunks):
    # BN heads: the chunk keys have different lengths, so normalising each
    # key before summing matters
    model = build(norm='BN', num_target_chunks=num_target_chunks)
    perturb_momentum_encoder(model)
    x = make_views(batch=3)[0]
    torch.manual_seed(11)
    keys = model.target_keys(x)
    chunk_keys = model.encode_chunks(
        x, num_target_chunks, encoder=model.momentum_encoder,
        generator=torch.Generator().manual_seed(11)).projection
    assert chunk_keys.shape == (3, num_target_chunks, DIMS)
    lengths = chunk_keys.norm(dim=-1)
    assert (lengths.max(dim=1).values / lengths.min(dim=1).values > 1.01).all()
    expected = spherical_mean_by_hand(chunk_keys)
    assert keys.shape == (3, DIMS)
    torch.testing.assert_close(keys.norm(dim=1), torch.ones(3))
    torch.testing.assert_close(keys.double(), expected, atol=1e-6, rtol=0)
    # the plain normalised sum of the keys is a different direction
    plain = F.normalize(chunk_keys.sum(1).double(), dim=1)
    assert not torch.allclose(keys.double(), plain, atol=1e-4)
    # the keys come from the momentum encoder, not the online one
    online = model.encode_chunks(
        x, num_target_chunks,
        generator=torch.Generator().manual_seed(11)).projection
    assert not torch.allclose(spherical_mean_by_hand(online), expected,
                              atol=1e-3)
    assert not keys.requires_grad


def test_one_target_chunk_is_the_momentum_projection_of_the_full_view(
        one_thread):
    model = build(num_target_chunks=1)
    perturb_momentum_encoder(model)
    x = make_views()[0]
    momentum = model.momentum_encoder
    expected = momentum['neck'](momentum['backbone'](x)[0])
    torch.testing.assert_close(model.target_keys(x), expected, atol=1e-5,
                               rtol=0)


# ----------------------------------------------------------------------
# the losses, end to end, by hand
# ----------------------------------------------------------------------
@pytest.mark.parametrize('num_chunks,num_target_chunks', [(4, 1), (4, 2),
                                                          (3, 1)])
def test_mmoco_loss_is_2tau_infonce_over_crossed_views_by_hand(
        one_thread, num_chunks, num_target_chunks):
    model = build(num_chunks=num_chunks,
                  num_target_chunks=num_target_chunks, temperature=0.3)
    perturb_momentum_encoder(model)
    views = make_views(batch=3)
    torch.manual_seed(21)
    loss = model.loss(views, None)['loss']
    with torch.no_grad():
        _, queries, keys = replay_loss_inputs(model, views, 21)
    assert queries[0].shape == (3, num_chunks, DIMS)
    # Eq. 3 for both (query view, key view) pairs, × 2τ (MoCo v3)
    expected = 2 * 0.3 * (moco_loss_by_hand(queries[0], keys[1], 0.3) +
                          moco_loss_by_hand(queries[1], keys[0], 0.3))
    assert loss.item() == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize('num_target_chunks', [1, 2])
def test_mbyol_loss_is_2_minus_2_cos_over_crossed_views_by_hand(
        one_thread, num_target_chunks):
    model = build(kind='MaskedBYOL', num_target_chunks=num_target_chunks)
    assert isinstance(model, MaskedBYOL)
    assert not hasattr(model.predictor, 'norm1')  # no output norm
    perturb_momentum_encoder(model)
    views = make_views(batch=3)
    torch.manual_seed(22)
    loss = model.loss(views, None)['loss']
    with torch.no_grad():
        _, queries, keys = replay_loss_inputs(model, views, 22)
    expected = byol_loss_by_hand(queries[0], keys[1]) + \
        byol_loss_by_hand(queries[1], keys[0])
    assert loss.item() == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize('kind', ['MaskedMoCoV3', 'MaskedBYOL'])
def test_every_trainable_parameter_gets_a_gradient(one_thread, kind):
    model = build(kind=kind, num_target_chunks=2)
    loss = model.loss(make_views(), None)['loss']
    assert torch.isfinite(loss)
    loss.backward()
    for name, param in model.named_parameters():
        if name.startswith('momentum_encoder.'):
            assert not param.requires_grad and param.grad is None, name
        elif name == 'backbone.pos_embed':
            assert not param.requires_grad and param.grad is None
        else:
            assert param.grad is not None, name
            assert param.grad.abs().sum() > 0, name


def test_forward_in_loss_mode_through_the_data_preprocessor(one_thread):
    model = build(
        data_preprocessor=dict(
            type='SelfSupDataPreprocessor', mean=[128.0] * 3,
            std=[64.0] * 3))
    g = torch.Generator().manual_seed(0)
    raw = [torch.randint(0, 256, (2, 3, 32, 32), generator=g).float()
           for _ in range(2)]
    data = model.data_preprocessor(
        dict(inputs=raw, data_samples=[DataSample(), DataSample()]),
        training=True)
    torch.manual_seed(3)
    loss = model(**data, mode='loss')['loss']
    torch.manual_seed(3)
    direct = model.loss([(v - 128.0) / 64.0 for v in raw], None)['loss']
    torch.testing.assert_close(loss, direct)


# ----------------------------------------------------------------------
# heads: LayerNorm heads contain no BatchNorm
# ----------------------------------------------------------------------
def test_layer_norm_model_has_no_batch_norm_anywhere():
    model = build(norm='LN', cross_attention=dict(
        type='ClassAttentionBlocks', embed_dims=64, num_heads=4))
    assert not any(isinstance(m, _BatchNorm) for m in model.modules())
    # (the BN variant does have them, in both encoders)
    bn_model = build(norm='BN')
    names = [n for n, m in bn_model.named_modules()
             if isinstance(m, _BatchNorm)]
    assert any(n.startswith('momentum_encoder.neck.') for n in names)
    assert any(n.startswith('predictor.') for n in names)


# ----------------------------------------------------------------------
# the momentum encoder
# ----------------------------------------------------------------------
def test_momentum_encoder_starts_as_an_exact_copy():
    model = build(cross_attention=dict(
        type='ClassAttentionBlocks', embed_dims=64, num_heads=4))
    parts = model.online_encoder()
    assert set(parts) == set(model.momentum_encoder) == {
        'backbone', 'neck', 'cross_attention'}
    for part, module in parts.items():
        copy = model.momentum_encoder[part]
        assert copy is not module
        for name, value in module.state_dict().items():
            assert torch.equal(copy.state_dict()[name], value), (part, name)
            assert copy.state_dict()[name].data_ptr() != value.data_ptr()
    # init_weights ran MoCo v3's init on the online encoder first
    assert torch.equal(model.backbone.layers[0].attn.qkv.bias,
                       torch.zeros(3 * 64))


def test_momentum_encoder_gets_no_gradient_and_no_optimizer_step(one_thread):
    model = build()
    assert all(not p.requires_grad
               for p in model.momentum_encoder.parameters())
    momentum_before = snapshot(model.momentum_encoder)
    online_before = snapshot(model.backbone)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3,
                                  weight_decay=0.1)
    model.loss(make_views(), None)['loss'].backward()
    assert all(p.grad is None for p in model.momentum_encoder.parameters())
    optimizer.step()
    for name, value in model.momentum_encoder.state_dict().items():
        assert torch.equal(value, momentum_before[name]), name
    assert not torch.equal(model.backbone.state_dict()['cls_token'],
                           online_before['cls_token'])


@pytest.mark.parametrize('momentum', [0.0, 0.9, 0.99, 1.0])
def test_update_teacher_is_the_ema(momentum):
    model = build(norm='BN')
    perturb_momentum_encoder(model, momentum=0.5)
    model.neck(torch.randn(8, 64))  # the online BN statistics move
    xi = snapshot(model.momentum_encoder)
    theta = {f'{part}.{k}': v
             for part, module in model.online_encoder().items()
             for k, v in snapshot(module).items()}
    for name in ('backbone.cls_token', 'neck.norm0.running_mean'):
        assert not torch.equal(xi[name], theta[name])
    model.update_teacher(momentum)
    params = {n for n, _ in model.momentum_encoder.named_parameters()}
    for name, value in model.momentum_encoder.state_dict().items():
        if name in params:
            torch.testing.assert_close(
                value, momentum * xi[name] + (1 - momentum) * theta[name],
                atol=1e-7, rtol=1e-6, msg=name)
        else:  # buffers (BN statistics) are copied
            assert torch.equal(value, theta[name]), name
    if momentum == 1.0:
        assert torch.equal(model.momentum_encoder.state_dict()[
            'backbone.cls_token'], xi['backbone.cls_token'])


@pytest.mark.parametrize('stop_grad_conv1', [True, False])
def test_frozen_patch_embedding_stays_fixed(one_thread, stop_grad_conv1):
    model = build(backbone=dict(stop_grad_conv1=stop_grad_conv1))
    projection = model.backbone.patch_embed.projection
    assert projection.weight.requires_grad is not stop_grad_conv1
    before = snapshot(model.backbone)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3,
                                  weight_decay=0.1)
    model.loss(make_views(), None)['loss'].backward()
    optimizer.step()
    after = model.backbone.state_dict()
    for name in ('patch_embed.projection.weight',
                 'patch_embed.projection.bias'):
        assert torch.equal(after[name], before[name]) is stop_grad_conv1
    assert not torch.equal(after['layers.0.attn.qkv.weight'],
                           before['layers.0.attn.qkv.weight'])
    assert torch.equal(after['pos_embed'], before['pos_embed'])


# ----------------------------------------------------------------------
# training
# ----------------------------------------------------------------------
def test_loss_decreases_when_overfitting_a_small_batch(one_thread):
    model = build(num_chunks=4)
    views = make_views(batch=8, seed=4)
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=1e-3)
    losses = []
    steps = 30
    for step in range(steps):
        loss = model.loss(views, None)['loss']
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        model.update_teacher(model.teacher_momentum(step / steps))
        losses.append(loss.item())
    assert all(math.isfinite(x) for x in losses)
    first, last = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
    assert last < 0.75 * first, losses  # chance level: 0.8 · ln 8


def test_state_dict_round_trip_gives_the_same_next_loss(one_thread):
    model = build(num_target_chunks=2)
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=1e-3)
    views = make_views()
    for step in range(2):
        loss = model.loss(views, None)['loss']
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        model.update_teacher(0.5)
    state = model.state_dict()
    assert any(k.startswith('momentum_encoder.backbone.') for k in state)
    assert not torch.equal(state['momentum_encoder.backbone.cls_token'],
                           state['backbone.cls_token'])
    resumed = build(seed=1, num_target_chunks=2)
    assert not torch.equal(resumed.state_dict()['backbone.cls_token'],
                           state['backbone.cls_token'])
    resumed.load_state_dict(state, strict=True)
    torch.manual_seed(8)
    expected = model.loss(views, None)['loss']
    torch.manual_seed(8)
    assert torch.equal(resumed.loss(views, None)['loss'], expected)


# ----------------------------------------------------------------------
# recorded chunk features (for ConcentrationMonitorHook)
# ----------------------------------------------------------------------
def test_recorded_chunk_features_are_rep_projector_predictor(one_thread):
    model = build(num_chunks=4)
    views = make_views(batch=3)
    model.loss(views, None)
    assert model.chunk_features is None  # off by default
    model.record_chunk_features = True
    torch.manual_seed(30)
    model.loss(views, None)
    features = model.chunk_features
    assert set(features) == {'rep', 'projector', 'predictor'}
    with torch.no_grad():
        online, queries, _ = replay_loss_inputs(model, views, 30)
    assert features['rep'].shape == (6, 4, 64)
    assert features['projector'].shape == (6, 4, DIMS)
    assert features['predictor'].shape == (6, 4, DIMS)
    # rep = mean of each chunk's patch tokens (no CLS), view 1 then view 2
    rep = torch.stack([
        torch.stack([
            out.tokens[b * 4 + i, 1:].mean(0) for i in range(4)
        ]) for out in online for b in range(3)
    ])
    torch.testing.assert_close(features['rep'], rep)
    assert not torch.allclose(features['rep'], torch.stack([
        torch.stack([out.tokens[b * 4 + i].mean(0) for i in range(4)])
        for out in online for b in range(3)
    ]), atol=1e-4)  # (with the CLS token it would differ)
    torch.testing.assert_close(
        features['projector'],
        torch.cat([out.projection for out in online]))
    torch.testing.assert_close(features['predictor'], torch.cat(queries))
    assert not any(f.requires_grad for f in features.values())


# ----------------------------------------------------------------------
# cross attention between backbone and projector ("LN + CA")
# ----------------------------------------------------------------------
def test_cross_attention_pools_the_chunk_tokens_in_both_encoders(one_thread):
    model = build(cross_attention=dict(
        type='ClassAttentionBlocks', embed_dims=64, num_heads=4))
    perturb_momentum_encoder(model)
    state = model.state_dict()
    assert any(k.startswith('cross_attention.blocks.') for k in state)
    assert any(
        k.startswith('momentum_encoder.cross_attention.blocks.')
        for k in state)
    x = make_views()[0]
    out = model.encode_chunks(x, 4,
                              generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(
        out.projection.flatten(0, 1),
        model.neck(model.cross_attention(out.tokens)))
    momentum = model.momentum_encoder
    keys = momentum['neck'](momentum['cross_attention'](
        momentum['backbone'](x, token_ids=torch.arange(PATCHES).expand(
            4, -1))[-1]))
    torch.testing.assert_close(model.target_keys(x), keys, atol=1e-5,
                               rtol=0)
    model.loss(make_views(), None)['loss'].backward()
    for name, param in model.cross_attention.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name
    assert all(p.grad is None and not p.requires_grad
               for p in momentum['cross_attention'].parameters())


# ----------------------------------------------------------------------
# bad configurations
# ----------------------------------------------------------------------
@pytest.mark.parametrize('overrides,field', [
    (dict(num_chunks=0), r'MaskedMoCoV3\.num_chunks'),
    (dict(num_chunks=65), r'MaskedMoCoV3\.num_chunks'),
    (dict(num_chunks=2.5), r'MaskedMoCoV3\.num_chunks'),
    (dict(num_chunks=True), r'MaskedMoCoV3\.num_chunks'),
    (dict(num_target_chunks=0), r'MaskedMoCoV3\.num_target_chunks'),
    (dict(num_target_chunks=65), r'MaskedMoCoV3\.num_target_chunks'),
    (dict(temperature=0), r'MaskedMoCoV3\.temperature'),
    (dict(temperature=-1.0), r'MaskedMoCoV3\.temperature'),
    (dict(temperature=True), r'MaskedMoCoV3\.temperature'),
    (dict(base_momentum=1.5), r'MaskedMoCoV3\.base_momentum'),
    (dict(end_momentum=-0.1), r'MaskedMoCoV3\.end_momentum'),
    (dict(kind='MaskedBYOL', num_chunks=0), r'MaskedBYOL\.num_chunks'),
])
def test_invalid_arguments_name_the_field(overrides, field):
    with pytest.raises(ValueError, match=field):
        MODELS.build(tiny_cfg(**overrides))


def test_backbone_must_be_a_masked_vit_with_a_cls_token():
    cfg = tiny_cfg()
    cfg['backbone'] = dict(type='VisionTransformer', arch=ARCH, img_size=32,
                           patch_size=PATCH)
    with pytest.raises(ValueError, match=r'MaskedMoCoV3\.backbone must be a '
                       'MaskedViT.*VisionTransformer'):
        MODELS.build(cfg)
    with pytest.raises(ValueError, match=r'MaskedMoCoV3\.backbone needs a '
                       'CLS token'):
        MODELS.build(tiny_cfg(backbone=dict(with_cls_token=False,
                                            out_type='featmap')))


@pytest.mark.parametrize('inputs,message', [
    (lambda v: [v[0]], 'two views .* 1 input'),
    (lambda v: v + [v[0]], 'two views .* 3 input'),
    (lambda v: v[0], 'list of two views, got a Tensor'),
])
def test_loss_needs_a_list_of_two_views(inputs, message):
    model = build()
    with pytest.raises(ValueError, match=message):
        model.loss(inputs(make_views(batch=2)), None)


def test_check_num_chunks_accepts_the_range_ends():
    assert check_num_chunks(1, 64, 'x.num_chunks') == 1
    assert check_num_chunks(64, 64, 'x.num_chunks') == 64
    with pytest.raises(ValueError, match=r'x\.num_chunks .* \[1, 64\]'):
        check_num_chunks(65, 64, 'x.num_chunks')


def test_registered_types():
    assert isinstance(build(), MaskedMoCoV3)
    assert isinstance(build(kind='MaskedBYOL'), MaskedBYOL)
