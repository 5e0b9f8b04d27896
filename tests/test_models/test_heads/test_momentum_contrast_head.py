"""MomentumContrastHead alone: InfoNCE by hand at both levels, the keys it
enqueues, the frozen momentum projector, the ℓ1 ablation, bad arguments."""
import math
from typing import Tuple

import pytest
import torch
from mmpretrain.registry import MODELS
from torch import Tensor, nn

from mmmoma.models.heads import MomentumContrastHead, moby_mlp

C, D, K, TAU = 8, 6, 12, 0.2  # map width, key width, queue length, τ


def conv(**widths) -> dict:
    return dict(type='ConvProjector', hidden_channels=10, **widths)


def mlp(**widths) -> dict:
    return dict(moby_mlp(with_avg_pool=False, **widths), hid_channels=10)


def build(level: str = 'patch', seed: int = 0,
          **kwargs) -> MomentumContrastHead:
    torch.manual_seed(seed)
    necks = dict(projector=conv(out_channels=D), predictor=conv()) \
        if level == 'patch' else dict(
            projector=dict(mlp(out_channels=D), with_avg_pool=True),
            predictor=mlp())
    cfg = dict(type='MomentumContrastHead', in_channels=C, level=level,
               queue_length=K, temperature=TAU, **necks)
    cfg.update(kwargs)
    head = MODELS.build(cfg)  # registered
    assert isinstance(head, MomentumContrastHead)
    head.init_weights()
    return head


def maps(batch: int = 2, seed: int = 0) -> Tuple[Tensor, Tensor]:
    """Student and teacher maps z, zₖ: (B, C, 3, 3)."""
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, C, 3, 3, generator=g),
            torch.randn(batch, C, 3, 3, generator=g))


def some_cells(batch: int = 2) -> Tensor:
    """A (B, 3, 3) choice of cells, a different number per image."""
    cells = torch.zeros(batch, 3, 3, dtype=torch.bool)
    cells[0, 0, :2] = cells[0, 2, 2] = True
    cells[1, 1:, 1] = True
    return cells


def perturb_momentum_projector(head: nn.Module) -> None:
    """p₃ ≠ p₁, so that a mix-up of the two shows."""
    with torch.no_grad():
        for param in head.momentum_projector.parameters():
            param.add_(0.3 * torch.randn_like(param))


def info_nce_by_hand(query: Tensor, positive: Tensor, queue: Tensor) -> float:
    """−log e^{q·k₊/τ} / (e^{q·k₊/τ} + Σⱼ e^{q·kⱼ/τ}), sums written out in
    float64 (all vectors normalised)."""
    query, positive = query.double(), positive.double()
    q = query / query.norm()
    pos = math.exp(float(q @ (positive / positive.norm())) / TAU)
    neg = sum(math.exp(float(q @ (key / key.norm())) / TAU)
              for key in queue.double())
    return -math.log(pos / (pos + neg))


def unit_mean(vectors) -> Tensor:
    """normalize(mean of the normalised vectors), written out."""
    mean = torch.stack([v / v.norm() for v in vectors]).mean(0)
    return mean / mean.norm()


@pytest.mark.parametrize('queue_key', ['all', 'masked'])
def test_patch_loss_and_queue_keys_by_hand(queue_key):
    head = build(queue_key=queue_key).eval()  # BN on running statistics
    perturb_momentum_projector(head)
    z, z_k = maps()
    cells = some_cells()
    queue = head.queue.keys.clone()
    loss = head.loss(z, z_k, cells)
    with torch.no_grad():
        q = head.predictor(head.projector(z))  # (B, D, 3, 3)
        k = head.momentum_projector(z_k)
    chosen = [(b, r, c) for b in range(2) for r in range(3) for c in range(3)
              if cells[b, r, c]]
    assert len(chosen) == 5
    terms = [info_nce_by_hand(q[b, :, r, c], k[b, :, r, c], queue)
             for b, r, c in chosen]
    assert loss.item() == pytest.approx(sum(terms) / len(terms), rel=1e-6)
    # one key per image: the mean of its normalised keys over all / the
    # loss cells, re-normalised; the rest of the queue as it was
    expected = torch.stack([
        unit_mean([k[b, :, r, c] for r in range(3) for c in range(3)
                   if queue_key == 'all' or cells[b, r, c]])
        for b in range(2)])
    torch.testing.assert_close(head.queue.keys[:2], expected, atol=1e-6,
                               rtol=0)
    assert torch.equal(head.queue.keys[2:], queue[2:])
    assert int(head.queue.ptr) == 2


def test_image_loss_and_queue_keys_by_hand():
    head = build('image').eval()
    perturb_momentum_projector(head)
    z, z_k = maps(batch=3, seed=1)
    queue = head.queue.keys.clone()
    loss = head.loss(z, z_k)
    with torch.no_grad():  # p₁ pools the map (GAP)
        q = head.predictor(head.projector((z, )))[0]  # (B, D)
        k = head.momentum_projector((z_k, ))[0]
    assert q.shape == k.shape == (3, D)
    terms = [info_nce_by_hand(q[b], k[b], queue) for b in range(3)]
    assert loss.item() == pytest.approx(sum(terms) / 3, rel=1e-6)
    # the image keys themselves, normalised
    torch.testing.assert_close(head.queue.keys[:3],
                               k / k.norm(dim=1, keepdim=True), atol=1e-6,
                               rtol=0)
    assert torch.equal(head.queue.keys[3:], queue[3:])
    assert int(head.queue.ptr) == 3


def test_each_step_uses_the_queue_before_its_own_keys():
    head = build().eval()
    z, z_k = maps()
    cells = torch.ones(2, 3, 3, dtype=torch.bool)
    head.loss(z, z_k, cells)  # writes slots 0, 1
    queue = head.queue.keys.clone()
    with torch.no_grad():
        q = head.predictor(head.projector(z))
        k = head.momentum_projector(z_k)
    terms = [info_nce_by_hand(q[b, :, r, c], k[b, :, r, c], queue)
             for b in range(2) for r in range(3) for c in range(3)]
    loss = head.loss(z, z_k, cells)
    assert loss.item() == pytest.approx(sum(terms) / 18, rel=1e-6)
    assert int(head.queue.ptr) == 4


@pytest.mark.parametrize('level', ['patch', 'image'])
def test_momentum_projector_is_a_frozen_copy(level):
    head = build(level)
    assert head.momentum_pairs == {'momentum_projector': 'projector'}
    source = head.projector.state_dict()
    for key, value in head.momentum_projector.state_dict().items():
        assert torch.equal(value, source[key]), key
    assert {id(p) for p in head.momentum_projector.parameters()}.isdisjoint(
        id(p) for p in head.projector.parameters())
    assert not any(p.requires_grad
                   for p in head.momentum_projector.parameters())
    z, z_k = maps()
    z.requires_grad_(True)
    head.loss(z, z_k, some_cells()).backward()
    assert all(p.grad is None for p in head.momentum_projector.parameters())
    assert all(p.grad is not None for p in head.projector.parameters())
    assert all(p.grad is not None for p in head.predictor.parameters())
    assert z.grad.abs().sum() > 0


def test_momentum_projector_starts_as_a_copy_despite_random_init():
    kaiming = dict(type='Kaiming', layer=['Conv2d'])
    head = build(projector=conv(out_channels=D, init_cfg=kaiming), seed=3)
    source = head.projector.state_dict()
    for key, value in head.momentum_projector.state_dict().items():
        assert torch.equal(value, source[key]), key


def test_l1_ablation_by_hand():
    head = build(loss='l1', target_channels=5).eval()
    assert not hasattr(head, 'momentum_projector')
    assert not hasattr(head, 'queue')
    assert head.momentum_pairs == {}
    assert head.predictor.layers[-1].out_channels == 5
    z, _ = maps()
    target = torch.randn(2, 5, 3, 3)
    cells = some_cells()
    loss = head.loss(z, target, cells)
    with torch.no_grad():
        prediction = head.predictor(head.projector(z))
    total, count = 0.0, 0
    for b in range(2):
        for r in range(3):
            for c in range(3):
                if cells[b, r, c]:
                    diff = prediction[b, :, r, c] - target[b, :, r, c]
                    total += diff.abs().sum().item()
                    count += diff.numel()
    assert count == 5 * 5
    assert loss.item() == pytest.approx(total / count, rel=1e-6)


@pytest.mark.parametrize('kwargs,match', [
    (dict(projector=conv()), 'MimCo.patch_projector needs out_channels'),
    (dict(predictor=conv(out_channels=4)),
     r'MimCo.patch_predictor.out_channels=4 .* 6'),
    (dict(projector=conv(out_channels=D, in_channels=3)),
     r'MimCo.patch_projector.in_channels=3 .* 8'),
    (dict(queue_length=0), 'MimCo.patch_queue_length'),
    (dict(level='token'), 'level must be one of'),
    (dict(loss='l1'), 'target_channels'),
    (dict(loss='cosine'), 'loss one of'),
])
def test_bad_arguments_raise_naming_the_field(kwargs, match):
    with pytest.raises(ValueError, match=match):
        build(name='MimCo.patch', **kwargs)


def test_l1_is_patch_level_only():
    with pytest.raises(ValueError, match=r"loss one of \('contrastive',\)"):
        build('image', loss='l1', target_channels=5)


@pytest.mark.parametrize('loss_type', ['contrastive', 'l1'])
def test_rows_by_count_equal_boolean_rows_bit_for_bit(loss_type):
    """With ``cells_per_sample`` (what MimCo passes, from the plan's shapes)
    the loss cells are gathered on the device instead of boolean-indexed
    (a host read of their count): the same loss, gradients and queue."""
    cells = torch.zeros(2, 3, 3, dtype=torch.bool)
    cells[0, 0, :2] = cells[0, 2, 2] = True
    cells[1, 1:, 1] = cells[1, 0, 0] = True  # 3 cells in each image
    results = []
    for count in (None, 3):
        head = build() if loss_type == 'contrastive' else build(
            loss='l1', target_channels=C)
        student, teacher = maps()
        student.requires_grad_()
        loss = head.loss(student, teacher, cells, count)
        loss.backward()
        results.append((loss.detach(), student.grad,
                        head.queue.keys.clone() if hasattr(head, 'queue')
                        else None))
    (loss_a, grad_a, queue_a), (loss_b, grad_b, queue_b) = results
    assert torch.equal(loss_a, loss_b) and torch.equal(grad_a, grad_b)
    assert grad_a.abs().sum() > 0
    if queue_a is not None:
        assert torch.equal(queue_a, queue_b)
