"""MimCo: Eq. 1 / 3 by hand, masking, queues, momentum projectors, frozen
teacher, queues across processes, ℓ1 ablation, Swin, configs (tiny)."""
import copy
import math
import os
import socket
from typing import Dict, List, Tuple

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from mmengine.registry import init_default_scope
from mmpretrain.models.backbones import SwinTransformer
from mmpretrain.registry import MODELS
from torch import Tensor, nn

from mmmoma.models.backbones import MaskedViT
from mmmoma.models.masking import expand_mask
from mmmoma.models.selfsup.mimco import MimCo

from ...helpers import tiny_mimco_cfg

ARCH = dict(embed_dims=64, num_layers=2, num_heads=4, feedforward_channels=128)
SWIN_ARCH = dict(embed_dims=16, depths=[1, 1], num_heads=[2, 2])
TAU = 0.2  # MimCo's default temperature
# tiny_mimco_cfg: 32 px, patch 4 -> 8 x 8 feature map; 8 px mask patches ->
# a 4 x 4 mask grid with ceil(16 * 0.6) = 10 masked (SimMIM's count), 40
# masked cells.
MASKED_PER_IMAGE = 10 * 4


def save_backbone(net: nn.Module, path) -> str:
    torch.save({'state_dict': {f'backbone.{k}': v
                               for k, v in net.state_dict().items()}}, path)
    return str(path)


@pytest.fixture(scope='module')
def vit_teacher(tmp_path_factory) -> str:
    torch.manual_seed(3)
    net = MaskedViT(arch=ARCH, img_size=32, patch_size=4, out_type='featmap')
    net.init_weights()
    return save_backbone(net, tmp_path_factory.mktemp('mimco') / 'vit.pth')


@pytest.fixture(scope='module')
def narrow_teacher(tmp_path_factory) -> str:
    """A 48-d teacher (the student is 64-d)."""
    torch.manual_seed(4)
    arch = dict(ARCH, embed_dims=48, feedforward_channels=96)
    net = MaskedViT(arch=arch, img_size=32, patch_size=4, out_type='featmap')
    net.init_weights()
    return save_backbone(net, tmp_path_factory.mktemp('mimco') / 'vit48.pth')


@pytest.fixture(scope='module')
def swin_teacher(tmp_path_factory) -> str:
    torch.manual_seed(5)
    net = SwinTransformer(arch=SWIN_ARCH, img_size=32, window_size=2,
                          out_indices=(1, ))
    net.init_weights()
    return save_backbone(net, tmp_path_factory.mktemp('mimco') / 'swin.pth')


def build(checkpoint: str, seed: int = 0, **overrides) -> MimCo:
    torch.manual_seed(seed)
    model = MODELS.build(tiny_mimco_cfg(ARCH, checkpoint, **overrides))
    model.init_weights()
    return model


def swin_overrides(checkpoint: str) -> dict:
    """Swin student (SimMIMSwinTransformer) and Swin teacher, 2 stages:
    32 px -> last stage 4 x 4 with 32 channels (stride 8)."""
    return dict(
        backbone=dict(
            type='SimMIMSwinTransformer',
            arch=SWIN_ARCH,
            img_size=32,
            stage_cfgs=dict(window_size=2),
            out_indices=(1, )),
        teacher=dict(
            network=dict(
                type='SwinTransformer',
                arch=SWIN_ARCH,
                img_size=32,
                window_size=2,
                out_indices=(1, )),
            checkpoint=checkpoint))


def images(batch: int = 2, seed: int = 0, size: int = 32) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, size, size, generator=g)


def mask_patch_mask(model: MimCo, plan) -> Tensor:
    """The plan's mask on the mask-patch grid (B, H / s, W / s)."""
    step = model.mask_patch_size // model.model_patch_size
    return plan.hidden_mask()[:, ::step, ::step]


def fix_mask(model: MimCo, batch: int, seed: int = 1) -> Tensor:
    """Draw one mask-patch mask (B, 4, 4) and make every loss call use it."""
    g = torch.Generator().manual_seed(seed)
    plan = model.plan(torch.zeros(batch, 3, 32, 32), generator=g)
    model.mask_generator = lambda *args, **kwargs: plan
    return mask_patch_mask(model, plan)


def snapshot(module: nn.Module) -> Dict[str, Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def train_step(model: MimCo, optimizer, x: Tensor) -> Dict[str, Tensor]:
    losses = model.loss(x, None)
    optimizer.zero_grad()
    sum(losses.values()).backward()
    optimizer.step()
    return losses


def expand_by_loops(mask: Tensor, factor: int) -> Tensor:
    """Reference upsampling of a (B, h, w) mask, cell by cell."""
    batch, height, width = mask.shape
    out = torch.zeros(batch, height * factor, width * factor,
                      dtype=torch.bool)
    for b in range(batch):
        for r in range(height * factor):
            for c in range(width * factor):
                out[b, r, c] = bool(mask[b, r // factor, c // factor])
    return out


def info_nce_by_hand(query: Tensor, positive: Tensor, queue: Tensor,
                     tau: float) -> float:
    """−log e^{q·k₊/τ} / (e^{q·k₊/τ} + Σⱼ e^{q·kⱼ/τ}) for one query, with
    the sums written out (float64; q, k₊ and the queue keys normalised)."""
    q = query / query.norm()
    k = positive / positive.norm()
    pos = math.exp(float(q @ k) / tau)
    neg = 0.0
    for key in queue:
        neg += math.exp(float(q @ (key / key.norm())) / tau)
    return -math.log(pos / (pos + neg))


def expected_queue_keys(model: MimCo, x: Tensor) -> Tuple[Tensor, Tensor]:
    """The keys one step on ``x`` must enqueue, image by image.

    Patch queue: the mean over *all* cells of the L2-normalised momentum
    projector keys, re-normalised. Image queue: the normalised image key.
    """
    with torch.no_grad():
        teacher = model.teacher(x)[-1]
        keys = model.patch_head.momentum_projector(teacher)  # (B, D, h, w)
        image = model.image_head.momentum_projector((teacher, ))[0]
    patch_keys = []
    for b in range(x.shape[0]):
        cells = [keys[b, :, r, c] / keys[b, :, r, c].norm()
                 for r in range(keys.shape[2]) for c in range(keys.shape[3])]
        mean = torch.stack(cells).mean(0)
        patch_keys.append(mean / mean.norm())
    return torch.stack(patch_keys), image / image.norm(dim=1, keepdim=True)


# ----------------------------------------------------------------------
# the losses, by hand
# ----------------------------------------------------------------------
class PooledLinear(nn.Module):
    """A known image head: global average pooling of a (B, C, h, w) map (if
    4-D), then a Linear; in / out as 1-tuples like ``NonLinearNeck``."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.fc = nn.Linear(in_features, out_features)

    def forward(self, x: Tuple[Tensor]) -> Tuple[Tensor]:
        (features, ) = x
        if features.dim() == 4:
            features = features.mean(dim=(2, 3))
        return (self.fc(features), )


def install_known_heads(model: MimCo) -> None:
    """Replace every head by a known affine map (no BatchNorm), p₃ distinct
    from p₁ so that a mix-up of the heads shows."""
    torch.manual_seed(123)
    model.patch_head.projector = nn.Conv2d(64, 16, 1)
    model.patch_head.predictor = nn.Conv2d(16, 16, 1)
    model.patch_head.momentum_projector = nn.Conv2d(
        64, 16, 1).requires_grad_(False)
    model.image_head.projector = PooledLinear(64, 16)
    model.image_head.predictor = PooledLinear(16, 16)
    model.image_head.momentum_projector = PooledLinear(
        64, 16).requires_grad_(False)


def affine(layer: nn.Module, x: Tensor) -> Tensor:
    """W x + b along dim 1 of x, in float64."""
    weight = layer.weight.detach().double().flatten(1)  # (D, C)
    bias = layer.bias.detach().double()
    out = torch.einsum('dc,bc...->bd...', weight, x.double())
    return out + bias.reshape(1, -1, *([1] * (x.dim() - 2)))


def test_losses_match_equations_1_and_3_by_hand(vit_teacher):
    model = build(vit_teacher, patch_loss_weight=0.5, image_loss_weight=2.0)
    install_known_heads(model)
    x = images(batch=2)
    mask = fix_mask(model, 2)
    patch_queue = model.patch_head.queue.keys.clone().double()
    image_queue = model.image_head.queue.keys.clone().double()
    losses = model.loss(x, None)
    assert set(losses) == {'loss_patch', 'loss_image'}

    with torch.no_grad():
        z = model.backbone(x, mask=expand_mask(mask, 2))[-1].double()
        z_k = model.teacher(x)[-1].double()
    assert z.shape == z_k.shape == (2, 64, 8, 8)
    # Eq. 1, 2: q_i = p2(p1(z))_i, k_i+ = p3(z_k)_i at the masked cells,
    # against the queue as it was before this step
    q = affine(model.patch_head.predictor,
               affine(model.patch_head.projector, z))
    k = affine(model.patch_head.momentum_projector, z_k)
    terms = []
    for b in range(2):
        for r in range(8):
            for c in range(8):
                if mask[b, r // 2, c // 2]:  # 8 px mask patch = 2 x 2 cells
                    terms.append(info_nce_by_hand(q[b, :, r, c],
                                                  k[b, :, r, c], patch_queue,
                                                  TAU))
    assert len(terms) == 2 * MASKED_PER_IMAGE
    assert losses['loss_patch'].item() == pytest.approx(
        0.5 * sum(terms) / len(terms), rel=1e-5)
    # Eq. 3, 4: q = p2(p1(GAP z)), k+ = p3(GAP z_k)
    q = affine(model.image_head.predictor.fc,
               affine(model.image_head.projector.fc, z.mean(dim=(2, 3))))
    k = affine(model.image_head.momentum_projector.fc, z_k.mean(dim=(2, 3)))
    image = [info_nce_by_hand(q[b], k[b], image_queue, TAU) for b in range(2)]
    assert losses['loss_image'].item() == pytest.approx(
        2.0 * sum(image) / 2, rel=1e-5)


def test_only_masked_cells_enter_the_patch_loss(vit_teacher):
    model = build(vit_teacher, image_loss_weight=0.0)
    # BatchNorm on running statistics: in train mode the projectors' batch
    # statistics mix all cells (Algorithm 1 projects the whole map before
    # selecting the masked cells)
    model.eval()
    mask = fix_mask(model, 2)
    cells = expand_by_loops(mask, 2)  # (2, 8, 8) feature-map cells
    x = images(batch=2)

    def patch_loss(edit=None, keep_grad=None) -> Tensor:
        m = copy.deepcopy(model)  # same queue for every call

        def hook(module, args, outs):
            z = outs[-1]
            if edit is not None:
                z = edit(z)
            if keep_grad is not None:
                z.retain_grad()
                keep_grad.append(z)
            return (*outs[:-1], z)

        m.backbone.register_forward_hook(hook)
        return m.loss(x, None)['loss_patch']

    kept: List[Tensor] = []
    base = patch_loss(keep_grad=kept)
    base.backward()
    grad = kept[0].grad.norm(dim=1)  # (B, h, w)
    assert torch.all(grad[~cells] == 0)
    assert torch.all(grad[cells] > 0)

    noise = torch.randn(2, 64, 8, 8)
    visible = patch_loss(
        lambda z: torch.where(cells[:, None], z, z + 3 * noise))
    masked = patch_loss(
        lambda z: torch.where(cells[:, None], z + 3 * noise, z))
    torch.testing.assert_close(visible, base, atol=1e-6, rtol=0)
    assert abs(masked.item() - base.item()) > 1e-3


# ----------------------------------------------------------------------
# masks: student patch grid and feature-map grid
# ----------------------------------------------------------------------
def spy_masks(model: MimCo) -> dict:
    """Record the mask the student gets and the one the patch loss uses."""
    seen = {}

    def pre_hook(module, args, kwargs):
        seen['student'] = kwargs.get('mask')

    model.backbone.register_forward_pre_hook(pre_hook, with_kwargs=True)
    original = model.patch_head.loss

    def patch_loss(student, teacher, mask, cells_per_sample):
        seen['feature'] = mask
        seen['feature_map'] = student.shape
        # the count MimCo derives from the plan's shapes is the mask's own
        assert (mask.flatten(1).sum(1) == cells_per_sample).all()
        return original(student, teacher, mask, cells_per_sample)

    model.patch_head.loss = patch_loss
    return seen


def test_vit_masks_cover_whole_mask_patches(vit_teacher):
    model = build(vit_teacher)
    seen = spy_masks(model)
    mask = fix_mask(model, 4)
    assert mask.shape == (4, 4, 4) and mask.dtype == torch.bool
    assert mask.sum(dim=(1, 2)).tolist() == [10] * 4
    x = images(batch=4)
    model.loss(x, None)
    # 8 px mask patches over 4 px model patches: 2 x 2 patches each
    assert torch.equal(seen['student'], expand_by_loops(mask, 2))
    assert seen['feature_map'] == (4, 64, 8, 8)
    assert torch.equal(seen['feature'], expand_by_loops(mask, 2))
    # extract_feat: the unmasked student
    model.eval()
    torch.testing.assert_close(
        model.extract_feat(x)[-1], model.backbone(x)[-1], atol=0, rtol=0)


# SimMIM's ceil(h·w·r): 10 of 16 and 3 of 4 at r = 0.6
@pytest.mark.parametrize('mask_patch_size,num_masked', [(8, 10), (16, 3)])
def test_swin_student_and_teacher(swin_teacher, mask_patch_size, num_masked):
    model = build(swin_teacher, mask_patch_size=mask_patch_size,
                  **swin_overrides(swin_teacher))
    assert model.model_patch_size == 4
    assert model.teacher_channels == 32
    seen = spy_masks(model)
    x = images(batch=4)
    mask = fix_mask(model, 4)
    grid = 32 // mask_patch_size
    assert mask.shape == (4, grid, grid)
    assert mask.sum(dim=(1, 2)).tolist() == [num_masked] * 4
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = train_step(model, optimizer, x)
    assert all(torch.isfinite(v) for v in losses.values())
    # the student masks 4 px patches, 8 x 8 of them
    assert torch.equal(seen['student'],
                       expand_by_loops(mask, mask_patch_size // 4))
    # the losses use the last stage: stride 8, 4 x 4 cells; a cell is masked
    # exactly when the mask patch holding it is
    assert seen['feature_map'] == (4, 32, 4, 4)
    assert torch.equal(seen['feature'],
                       expand_by_loops(mask, mask_patch_size // 8))
    assert model.backbone.mask_token.grad.abs().sum() > 0


def test_swin_mask_patch_smaller_than_the_feature_stride_raises(
        swin_teacher):
    model = build(swin_teacher, mask_patch_size=4,
                  **swin_overrides(swin_teacher))  # stride 8 > 4
    with pytest.raises(ValueError,
                       match=r'MimCo.mask_patch_size=4 must be a multiple '
                       'of the feature-map stride'):
        model.loss(images(batch=4), None)


# ----------------------------------------------------------------------
# queues
# ----------------------------------------------------------------------
def test_enqueued_keys_are_per_image_means_of_all_patch_keys(vit_teacher):
    model = build(vit_teacher)
    x = images(batch=4, seed=2)
    patch, image = expected_queue_keys(model, x)
    before = {name: model.get_submodule(name).keys.clone()
              for name in ('patch_head.queue', 'image_head.queue')}
    mask = fix_mask(model, 4)
    model.loss(x, None)
    for name, keys in (('patch_head.queue', patch),
                       ('image_head.queue', image)):
        queue = model.get_submodule(name)
        torch.testing.assert_close(queue.keys[:4], keys, atol=1e-6, rtol=0)
        torch.testing.assert_close(queue.keys[:4].norm(dim=1),
                                   torch.ones(4))
        assert torch.equal(queue.keys[4:], before[name][4:])
        assert int(queue.ptr) == 4
    # the readings the per-image mean over all patches is not: the mean of
    # the masked cells only, or one mean over the batch
    with torch.no_grad():
        keys = F.normalize(model.patch_head.momentum_projector(
            model.teacher(x)[-1]), dim=1)
    cells = expand_mask(mask, 2)[:, None]
    masked_mean = F.normalize(
        (keys * cells).sum((2, 3)) / cells.sum((2, 3)), dim=1)
    assert not torch.allclose(masked_mean, patch, atol=1e-3)
    batch_mean = F.normalize(keys.mean(dim=(0, 2, 3)), dim=0)
    assert not torch.allclose(batch_mean.expand_as(patch), patch, atol=1e-3)


def keys_by_loops(keys: Tensor, cells: Tensor) -> Tensor:
    """Per image: the mean of the L2-normalised keys at the chosen cells,
    re-normalised, written cell by cell. keys (B, D, h, w), cells (B, h, w)."""
    out = []
    for b in range(keys.shape[0]):
        chosen = [keys[b, :, r, c] / keys[b, :, r, c].norm()
                  for r in range(keys.shape[2])
                  for c in range(keys.shape[3]) if cells[b, r, c]]
        mean = torch.stack(chosen).mean(0)
        out.append(mean / mean.norm())
    return torch.stack(out)


@pytest.mark.parametrize('queue_key', ['all', 'masked'])
def test_patch_queue_key_enqueues_the_chosen_cells(vit_teacher, queue_key):
    """§3.2 ("the average feature of all patch features", 'all') and
    Algorithm 1 (mean(z_k^p) after z_k^p = z_k^p[m], 'masked'): each option
    enqueues exactly its cells' mean key, image by image."""
    model = build(vit_teacher, patch_queue_key=queue_key)
    assert model.patch_queue_key == queue_key
    x = images(batch=4, seed=7)
    mask = fix_mask(model, 4)
    cells = expand_by_loops(mask, 2)  # (4, 8, 8), 40 of 64 masked
    chosen = torch.ones_like(cells) if queue_key == 'all' else cells
    with torch.no_grad():
        keys = model.patch_head.momentum_projector(model.teacher(x)[-1])
    expected = keys_by_loops(keys, chosen)
    other = keys_by_loops(keys, ~cells if queue_key == 'masked' else cells)
    before = model.patch_head.queue.keys.clone()
    model.loss(x, None)
    queue = model.patch_head.queue
    torch.testing.assert_close(queue.keys[:4], expected, atol=1e-6, rtol=0)
    assert not torch.allclose(queue.keys[:4], other, atol=1e-3)
    assert torch.equal(queue.keys[4:], before[4:])
    assert int(queue.ptr) == 4


def test_default_patch_queue_key_is_all_cells(vit_teacher):
    assert build(vit_teacher).patch_queue_key == 'all'


def test_simmim_masked_count_at_224_px(vit_teacher):
    """SimMIM's MaskGenerator: ceil(49 * 0.6) = 30 of the 7 x 7 mask patches
    of a 224 px image (32 px mask patches), not 29."""
    model = build(vit_teacher, mask_patch_size=32)
    mask = mask_patch_mask(model, model.plan(
        torch.zeros(3, 3, 224, 224),
        generator=torch.Generator().manual_seed(0)))
    assert mask.shape == (3, 7, 7)
    assert mask.sum(dim=(1, 2)).tolist() == [30] * 3


def test_no_masking_trains_the_patch_loss_on_every_cell(vit_teacher):
    """Table 11 without masking (mask_ratio 0, "degenerates to a knowledge
    distillation framework"): the student sees the whole image and L_patch
    is finite, over all cells, each with a gradient (it was NaN: a mean over
    no masked cell)."""
    model = build(vit_teacher, mask_ratio=0.0, image_loss_weight=0.0)
    model.eval()  # BN on running statistics: cells do not mix
    seen = spy_masks(model)
    x = images(batch=2, seed=3)
    kept: List[Tensor] = []

    def hook(module, args, outs):
        outs[-1].retain_grad()
        kept.append(outs[-1])
        return outs

    model.backbone.register_forward_hook(hook)
    queue = model.patch_head.queue.keys.clone()
    loss = model.loss(x, None)['loss_patch']
    assert torch.isfinite(loss)
    assert not seen['student'].any()  # no patch replaced by the mask token
    assert seen['feature'].all()  # every cell enters L_patch
    loss.backward()
    assert torch.all(kept[0].grad.norm(dim=1) > 0)
    # = Eq. 1 over all 2 x 64 cells, by the model's own heads
    with torch.no_grad():
        query = model.patch_head.predictor(model.patch_head.projector(kept[0]))
        keys = F.normalize(
            model.patch_head.momentum_projector(model.teacher(x)[-1]), dim=1)
    query = query.permute(0, 2, 3, 1).reshape(-1, query.shape[1])
    positive = keys.permute(0, 2, 3, 1).reshape(-1, keys.shape[1])
    by_hand = sum(info_nce_by_hand(q.double(), k.double(), queue.double(),
                                   TAU) for q, k in zip(query, positive))
    assert loss.item() == pytest.approx(by_hand / 128, rel=1e-5)


@pytest.mark.parametrize('ratio', [0.01, 1e-6])
def test_any_positive_mask_ratio_masks_a_cell(vit_teacher, ratio):
    """SimMIM's ceil(h·w·r): a ratio > 0 masks at least one mask patch
    (here 1 of 16 = 4 of 64 cells), so L_patch is finite (0.01 used to mask
    none and train with ``loss_patch: nan``); only 0 masks none, and that is
    Table 11's explicit no-masking variant."""
    model = build(vit_teacher, mask_ratio=ratio)
    seen = spy_masks(model)
    loss = model.loss(images(batch=2, seed=5), None)['loss_patch']
    assert seen['student'].sum(dim=(1, 2)).tolist() == [4, 4]
    assert torch.equal(seen['feature'], seen['student'])
    assert torch.isfinite(loss)


def test_queue_pointers_wrap_around(vit_teacher):
    # 4 images a step: the patch queue holds 3 steps, the image queue 2
    model = build(vit_teacher, patch_queue_length=12, image_queue_length=8)
    expected = []
    patch_ptrs, image_ptrs = [], []
    for step in range(4):
        x = images(batch=4, seed=10 + step)
        expected.append(expected_queue_keys(model, x))
        model.loss(x, None)
        patch_ptrs.append(int(model.patch_head.queue.ptr))
        image_ptrs.append(int(model.image_head.queue.ptr))
    assert patch_ptrs == [4, 8, 0, 4]
    assert image_ptrs == [4, 0, 4, 0]
    # step 4 overwrote the oldest block of each queue
    patch = torch.cat([expected[3][0], expected[1][0], expected[2][0]])
    image = torch.cat([expected[2][1], expected[3][1]])
    torch.testing.assert_close(model.patch_head.queue.keys, patch, atol=1e-6,
                               rtol=0)
    torch.testing.assert_close(model.image_head.queue.keys, image, atol=1e-6,
                               rtol=0)


def test_queues_and_next_step_survive_a_state_dict_round_trip(
        vit_teacher, tmp_path):
    kwargs = dict(patch_queue_length=12, image_queue_length=8)
    model = build(vit_teacher, **kwargs)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    for step in range(3):
        train_step(model, optimizer, images(batch=4, seed=step))
        model.update_teacher(model.teacher_momentum(step / 3))
    path = tmp_path / 'mimco.pth'
    torch.save(model.state_dict(), path)
    state = torch.load(path)
    assert int(state['patch_head.queue.ptr']) == 0  # 3 x 4 keys: wrapped
    assert int(state['image_head.queue.ptr']) == 4
    assert 'patch_head.momentum_projector.layers.0.weight' in state
    assert not any(key.startswith('teacher.') for key in state)

    fresh = build(vit_teacher, seed=1, **kwargs)
    assert not torch.equal(fresh.patch_head.queue.keys,
                           model.patch_head.queue.keys)
    fresh.load_state_dict(state, strict=True)
    for name in ('patch_head.queue', 'image_head.queue'):
        assert torch.equal(fresh.get_submodule(name).keys,
                           model.get_submodule(name).keys)
        assert torch.equal(fresh.get_submodule(name).ptr,
                           model.get_submodule(name).ptr)
    # the next step is the uninterrupted model's, given the same seed
    x = images(batch=4, seed=7)
    torch.manual_seed(5)
    want = model.loss(x, None)
    torch.manual_seed(5)
    got = fresh.loss(x, None)
    assert want.keys() == got.keys() == {'loss_patch', 'loss_image'}
    for key in want:
        assert torch.equal(got[key], want[key]), key
    for name in ('patch_head.queue', 'image_head.queue'):
        assert torch.equal(fresh.get_submodule(name).keys,
                           model.get_submodule(name).keys)


# ----------------------------------------------------------------------
# momentum projectors and the frozen teacher
# ----------------------------------------------------------------------
def test_momentum_projectors_follow_their_ema(vit_teacher):
    model = build(vit_teacher)
    pairs = [(model.patch_head.momentum_projector, model.patch_head.projector),
             (model.image_head.momentum_projector, model.image_head.projector)]
    for average, source in pairs:  # after init_weights: exact copies
        want = source.state_dict()
        for key, value in average.state_dict().items():
            assert torch.equal(value, want[key]), key
        assert not any(p.requires_grad for p in average.parameters())
    # one step over all parameters (AdamW with weight decay) moves p1 only
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2,
                                  weight_decay=0.05)
    params_before = [{k: v.detach().clone()
                      for k, v in average.named_parameters()}
                     for average, _ in pairs]
    train_step(model, optimizer, images(batch=4))
    for (average, source), before in zip(pairs, params_before):
        for name, param in average.named_parameters():
            assert param.grad is None, name
            assert torch.equal(param, before[name]), name
        assert all(p.grad is not None for p in source.parameters())
    for name, param in model.named_parameters():  # every trained part
        if param.requires_grad:
            assert param.grad is not None, name

    olds = [snapshot(average) for average, _ in pairs]
    sources = [snapshot(source) for _, source in pairs]
    model.update_teacher(0.9)
    for (average, _), old, source in zip(pairs, olds, sources):
        for name, param in average.named_parameters():
            assert not torch.equal(old[name], source[name]), name
            torch.testing.assert_close(
                param, 0.9 * old[name] + 0.1 * source[name], atol=1e-7,
                rtol=1e-6)
        for name, buffer in average.named_buffers():  # BN statistics
            assert torch.equal(buffer, source[name]), name
    with pytest.raises(ValueError, match='momentum'):
        model.update_teacher(1.5)


def test_momentum_projectors_start_as_copies_despite_random_init(
        vit_teacher):
    # heads with a random init_cfg: p1 and p3 draw different weights in
    # init_weights, which must then copy p1 into p3
    kaiming = dict(type='Kaiming', layer=['Conv2d', 'Linear'])
    cfg = tiny_mimco_cfg(ARCH, vit_teacher)
    for name in ('patch_projector', 'image_projector'):
        cfg[name] = dict(cfg[name], init_cfg=kaiming)
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.init_weights()
    for prefix in ('patch', 'image'):
        source = getattr(model, f'{prefix}_head').projector.state_dict()
        average = getattr(model, f'{prefix}_head').momentum_projector
        for key, value in average.state_dict().items():
            assert torch.equal(value, source[key]), key


def test_teacher_momentum_is_mobys_cosine_schedule(vit_teacher):
    model = build(vit_teacher)
    assert model.momentum_update == 'iter'
    assert model.teacher_momentum(0.0) == pytest.approx(0.99)
    assert model.teacher_momentum(0.5) == pytest.approx(0.995)
    assert model.teacher_momentum(1.0) == pytest.approx(1.0)
    assert model.teacher_momentum(0.25) == pytest.approx(
        1 - 0.01 * (1 + math.cos(math.pi / 4)) / 2)
    other = build(vit_teacher, base_momentum=0.9, end_momentum=0.98)
    assert other.teacher_momentum(0.5) == pytest.approx(0.94)


def test_teacher_is_frozen_outside_optimizer_and_checkpoint(vit_teacher):
    model = build(vit_teacher)
    network = model.teacher.network
    state = snapshot(network)
    assert {id(p) for p in network.parameters()}.isdisjoint(
        id(p) for p in model.parameters())
    assert not any(key.startswith('teacher.') for key in model.state_dict())
    assert not any(p.requires_grad for p in network.parameters())
    seen = []
    network.patch_embed.register_forward_hook(
        lambda module, args, out: seen.append(args[0]))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model.train()
    for step in range(3):
        x = images(batch=4, seed=step)
        train_step(model, optimizer, x)
        # the teacher sees the whole, unmasked image
        assert torch.equal(seen[-1], x)
    assert not network.training
    for key, value in network.state_dict().items():
        assert torch.equal(value, state[key]), key
    assert all(p.grad is None for p in network.parameters())
    assert not model.teacher(images())[-1].requires_grad


# ----------------------------------------------------------------------
# queues across processes
# ----------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def _dist_worker(rank: int, world_size: int, port: int, checkpoint: str,
                 out: str) -> None:
    torch.set_num_threads(1)  # first: no OpenMP pool in a forked child
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    dist.init_process_group('gloo', rank=rank, world_size=world_size)
    try:
        init_default_scope('mmpretrain')
        # same weights and initial queues on both ranks, different data
        model = build(checkpoint, patch_queue_length=16,
                      image_queue_length=16)
        x = images(batch=4, seed=100 + rank)
        patch, image = expected_queue_keys(model, x)
        losses = model.loss(x, None)
        sum(losses.values()).backward()
        result = dict(
            expected={'patch_head.queue': patch, 'image_head.queue': image},
            queues={name: (model.get_submodule(name).keys.clone(),
                           int(model.get_submodule(name).ptr))
                    for name in ('patch_head.queue', 'image_head.queue')})
        # 12 keys are enough for 4 images per rank, not for 2 x 4
        small = build(checkpoint, patch_queue_length=12,
                      image_queue_length=16)
        forwards = []
        small.backbone.register_forward_hook(
            lambda *args: forwards.append(1))
        try:
            small.loss(x, None)
        except ValueError as error:
            result['error'] = str(error)
        result['forwards_before_error'] = len(forwards)
        torch.save(result, f'{out}/rank{rank}.pth')
    finally:
        dist.destroy_process_group()


def test_two_processes_share_their_keys_in_both_queues(vit_teacher,
                                                       tmp_path):
    # forked workers inherit the imported stack (spawning would re-import
    # it: ~15 s on 2 cores); they run on one intra-op thread each
    mp.start_processes(_dist_worker, args=(2, _free_port(), vit_teacher,
                                           str(tmp_path)),
                       nprocs=2, start_method='fork')
    results = [torch.load(tmp_path / f'rank{r}.pth') for r in (0, 1)]
    for name in ('patch_head.queue', 'image_head.queue'):
        mine, theirs = (r['expected'][name] for r in results)
        assert not torch.allclose(mine, theirs, atol=1e-3)  # other data
        for result in results:
            keys, ptr = result['queues'][name]
            # both ranks' keys, in rank order, at the head of the queue
            torch.testing.assert_close(keys[:4], mine, atol=1e-6, rtol=0)
            torch.testing.assert_close(keys[4:8], theirs, atol=1e-6, rtol=0)
            assert ptr == 8
        assert torch.equal(results[0]['queues'][name][0],
                           results[1]['queues'][name][0])
    for result in results:
        assert 'MimCo.patch_queue_length=12' in result['error']
        assert '(8' in result['error']  # the global batch
        # checked up front, not when the gathered keys arrive
        assert result['forwards_before_error'] == 0


# ----------------------------------------------------------------------
# training
# ----------------------------------------------------------------------
def test_tiny_mimco_overfits_a_fixed_batch(vit_teacher, one_thread):
    # queues of 2 batches: once full, each image's own earlier keys are 2 of
    # the image loss's negatives, so it cannot fall below about log(3)
    model = build(vit_teacher, patch_queue_length=16, image_queue_length=16)
    fix_mask(model, 8)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    x = images(batch=8, seed=3)
    history = []
    for step in range(40):
        losses = train_step(model, optimizer, x)
        model.update_teacher(model.teacher_momentum(step / 40))
        history.append({k: v.item() for k, v in losses.items()})
    for key in ('loss_patch', 'loss_image'):
        first = history[0][key]
        last = sum(h[key] for h in history[-3:]) / 3
        assert last < 0.5 * first, (key, first, last)


# ----------------------------------------------------------------------
# the ℓ1 ablation and switched-off terms
# ----------------------------------------------------------------------
def test_l1_patch_loss_by_hand(vit_teacher):
    # the predictor's output width is filled in: the teacher's for l1
    model = build(vit_teacher, patch_loss='l1', image_loss_weight=0.0)
    for name in ('queue', 'momentum_projector'):
        assert not hasattr(model.patch_head, name), name
    assert not hasattr(model, 'image_head')
    assert not any(k.startswith(('patch_head.queue', 'image_'))
                   for k in model.state_dict())
    assert model.patch_head.predictor.layers[-1].out_channels == 64
    mask = fix_mask(model, 2)
    x = images(batch=2)
    losses = model.loss(x, None)
    assert set(losses) == {'loss_patch'}
    with torch.no_grad():  # the heads' BN sees the same batch again
        z = model.backbone(x, mask=expand_mask(mask, 2))[-1]
        prediction = model.patch_head.predictor(model.patch_head.projector(z))
        target = model.teacher(x)[-1]
    total, count = 0.0, 0
    for b in range(2):
        for r in range(8):
            for c in range(8):
                if mask[b, r // 2, c // 2]:
                    diff = prediction[b, :, r, c] - target[b, :, r, c]
                    total += diff.abs().sum().item()
                    count += diff.numel()
    assert count == 2 * MASKED_PER_IMAGE * 64
    assert losses['loss_patch'].item() == pytest.approx(total / count,
                                                        rel=1e-5)
    losses['loss_patch'].backward()
    assert model.patch_head.projector.layers[0].weight.grad.abs().sum() > 0


def test_l1_needs_no_matching_teacher_width(narrow_teacher):
    arch48 = dict(ARCH, embed_dims=48, feedforward_channels=96)
    teacher = dict(
        network=dict(type='MaskedViT', arch=arch48, img_size=32,
                     patch_size=4, out_type='featmap'),
        checkpoint=narrow_teacher)
    model = build(narrow_teacher, teacher=teacher, patch_loss='l1',
                  image_loss_weight=0.0)
    assert model.patch_head.predictor.layers[-1].out_channels == 48
    losses = model.loss(images(batch=2), None)
    assert torch.isfinite(losses['loss_patch'])
    # the image term's momentum projector needs matching widths
    with pytest.raises(ValueError, match='channels'):
        build(narrow_teacher, teacher=teacher, patch_loss='l1')


@pytest.mark.parametrize('off,on', [('patch', 'image'), ('image', 'patch')])
def test_a_zero_weight_switches_its_term_off(vit_teacher, off, on):
    model = build(vit_teacher, **{f'{off}_loss_weight': 0.0})
    assert not hasattr(model, f'{off}_head')
    for head in ('projector', 'predictor', 'momentum_projector', 'queue'):
        assert hasattr(getattr(model, f'{on}_head'), head)
    assert not any(k.startswith(f'{off}_') for k in model.state_dict())
    losses = model.loss(images(batch=2), None)
    assert set(losses) == {f'loss_{on}'}
    losses[f'loss_{on}'].backward()


# ----------------------------------------------------------------------
# bad configs
# ----------------------------------------------------------------------
@pytest.mark.parametrize('kwargs,match', [
    (dict(mask_patch_size=6), r'MimCo.mask_patch_size .* patch size 4'),
    (dict(mask_patch_size=0), 'MimCo.mask_patch_size'),
    (dict(mask_patch_size=8.0), 'MimCo.mask_patch_size'),
    (dict(mask_ratio=1.0), 'MimCo.mask_ratio'),
    (dict(mask_ratio=-0.1), 'MimCo.mask_ratio'),
    (dict(patch_loss_weight=0, image_loss_weight=0), 'both 0'),
    (dict(patch_loss_weight=-1.0), 'MimCo.patch_loss_weight'),
    (dict(patch_loss='cosine'), r"MimCo.patch_loss .*'contrastive', 'l1'"),
    (dict(patch_queue_key='visible'),
     r"MimCo.patch_queue_key .*'all', 'masked'"),
    (dict(patch_queue_key='masked', mask_ratio=0.0),
     r"MimCo.patch_queue_key='masked' .* MimCo.mask_ratio=0"),
    (dict(temperature=0.0), 'MimCo.temperature'),
    (dict(temperature=-0.2), 'MimCo.temperature'),
    (dict(base_momentum=1.5), 'MimCo.base_momentum'),
    (dict(end_momentum=-0.1), 'MimCo.end_momentum'),
    (dict(momentum_update='step'), 'MimCo.momentum_update'),
    (dict(patch_queue_length=0), 'MimCo.patch_queue_length'),
    (dict(patch_projector=dict(type='ConvProjector', in_channels=32,
                               hidden_channels=32, out_channels=16)),
     'MimCo.patch_projector.in_channels=32'),
    (dict(image_projector=dict(type='NonLinearNeck', hid_channels=32)),
     'MimCo.image_projector needs out_channels'),
    (dict(patch_predictor=dict(type='ConvProjector', hidden_channels=32,
                               out_channels=8)),
     r'MimCo.patch_predictor.out_channels=8 .* 16'),
    (dict(patch_loss='l1',
          patch_predictor=dict(type='ConvProjector', hidden_channels=32,
                               out_channels=16)),
     r'MimCo.patch_predictor.out_channels=16 .* 64'),
])
def test_bad_config_values_raise_naming_the_field(vit_teacher, kwargs,
                                                  match):
    with pytest.raises(ValueError, match=match):
        MODELS.build(tiny_mimco_cfg(ARCH, vit_teacher, **kwargs))


def test_teacher_of_another_width_raises_at_build(narrow_teacher):
    arch48 = dict(ARCH, embed_dims=48, feedforward_channels=96)
    teacher = dict(
        network=dict(type='MaskedViT', arch=arch48, img_size=32,
                     patch_size=4, out_type='featmap'),
        checkpoint=narrow_teacher)
    with pytest.raises(ValueError, match=r'64 channels .* 48'):
        MODELS.build(tiny_mimco_cfg(ARCH, narrow_teacher, teacher=teacher))


def test_teacher_of_another_patch_grid_raises_at_loss(tmp_path):
    torch.manual_seed(6)
    net = MaskedViT(arch=ARCH, img_size=32, patch_size=8, out_type='featmap')
    checkpoint = save_backbone(net, tmp_path / 'vit_p8.pth')
    teacher = dict(
        network=dict(type='MaskedViT', arch=ARCH, img_size=32, patch_size=8,
                     out_type='featmap'),
        checkpoint=checkpoint)
    model = build(checkpoint, teacher=teacher)  # same width: builds
    with pytest.raises(ValueError, match='same patch grid'):
        model.loss(images(batch=2), None)


@pytest.mark.parametrize('name', ['patch_queue_length', 'image_queue_length'])
def test_queue_not_tiling_the_global_batch_raises_at_loss(vit_teacher, name):
    model = build(vit_teacher, **{name: 60})
    with pytest.raises(ValueError, match=rf'MimCo.{name}=60 .* \(8'):
        model.loss(images(batch=8), None)
    model.loss(images(batch=4), None)  # 60 = 15 x 4 is fine


def test_input_not_divisible_by_the_mask_patch_raises(vit_teacher):
    model = build(vit_teacher)
    with pytest.raises(ValueError,
                       match=r'MimCo.mask_patch_size=8 must divide the input '
                       r'size 36x36'):
        model.loss(images(batch=2, size=36), None)
    losses = model.loss([images(batch=2, size=40)], None)  # a 1-view list
    assert all(torch.isfinite(v) for v in losses.values())
