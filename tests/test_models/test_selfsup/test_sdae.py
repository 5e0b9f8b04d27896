"""SdAE: teacher folds, targets, loss, EMA, gradients and configs (tiny)."""
import copy
import math
import re
from typing import Dict

import pytest
import torch
from mmpretrain.registry import MODELS
from torch import Tensor

from mmmoma.models.losses import (cosine_distance, fold_cosine_distance,
                                  normalize_target, within_image_token_cosine)
from mmmoma.models.masking import (TeacherTokens, random_token_split,
                                   select_teacher_tokens, teacher_tokens_of)
from mmmoma.models.selfsup.sdae import SdAE
from mmmoma.models.utils import cosine_momentum

from ...helpers import tiny_sdae_cfg

ARCH = dict(embed_dims=64, num_layers=2, num_heads=4, feedforward_channels=128)
GRID = 8  # 32 px images, 4 px patches: 8 x 8 = 64 patch tokens
NUM_TOKENS = GRID * GRID


def sdae_cfg(**kwargs) -> dict:
    """A tiny SdAE config (64 tokens, 48 masked in 3 folds of 16)."""
    return tiny_sdae_cfg(ARCH, **kwargs)


def build(seed: int = 0, **kwargs) -> SdAE:
    torch.manual_seed(seed)
    model = MODELS.build(sdae_cfg(**kwargs))
    model.init_weights()
    return model


def images(batch: int = 2, seed: int = 0) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, 32, 32, generator=g)


def perturb_patch(x: Tensor, sample: int, patch: int,
                  delta: float = 3.0) -> Tensor:
    """A copy of ``x`` with the pixels of one patch of one sample changed."""
    out = x.clone()
    r, c = divmod(int(patch), GRID)
    out[sample, :, 4 * r:4 * (r + 1), 4 * c:4 * (c + 1)] += delta
    return out


def snapshot(module: torch.nn.Module) -> Dict[str, Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def as_set(ids: Tensor) -> set:
    return set(ids.tolist())


# ----------------------------------------------------------------------
# folds (select_teacher_tokens / SdAE.teacher_tokens)
# ----------------------------------------------------------------------
@pytest.mark.parametrize('mask_ratio,num_folds', [(0.75, 3), (0.75, 7),
                                                  (0.7, 4), (0.75, 1)])
def test_masked_folds_partition_the_masked_tokens(mask_ratio, num_folds):
    torch.manual_seed(0)
    split = random_token_split(4, NUM_TOKENS, mask_ratio)
    num_masked = split.ids_mask.shape[1]
    tokens = select_teacher_tokens(split, 'masked', num_folds)
    fold_size = num_masked // num_folds
    remainder = num_masked % num_folds
    assert tokens.fold_ids.shape == (4, num_folds, fold_size)
    assert tokens.left_out.shape == (4, remainder)
    assert tokens.target_rows is None
    for b in range(4):
        folds = [as_set(f) for f in tokens.fold_ids[b]]
        # equal-sized, pairwise disjoint
        assert all(len(f) == fold_size for f in folds)
        assert len(set().union(*folds)) == fold_size * num_folds
        # the documented remainder: the last M % t ids of ids_mask
        assert tokens.left_out[b].tolist() == \
            split.ids_mask[b, num_masked - remainder:].tolist()
        assert set().union(*folds) | as_set(tokens.left_out[b]) == \
            as_set(split.ids_mask[b])
        # never a visible token
        assert not set().union(*folds) & as_set(split.ids_keep[b])
        # targets: every fold token, fold by fold
        assert tokens.target_ids[b].tolist() == \
            tokens.fold_ids[b].flatten().tolist()


def test_remainder_case_is_really_exercised():
    # 0.7 masking: int(64 * 0.3) = 19 visible (MAE), 45 masked; 4 folds of 11
    split = random_token_split(2, NUM_TOKENS, 0.7)
    tokens = select_teacher_tokens(split, 'masked', 4)
    assert split.ids_mask.shape[1] == 45
    assert tokens.fold_ids.shape == (2, 4, 11)
    assert tokens.left_out.shape == (2, 1)


@pytest.mark.parametrize('crop_ratio,num_folds,size', [(0.5, 3, 24),
                                                       (0.3, 3, 14),
                                                       (1.0, 3, 48)])
def test_crop_is_a_subset_of_the_masked_tokens(crop_ratio, num_folds, size):
    torch.manual_seed(1)
    split = random_token_split(3, NUM_TOKENS, 0.75)
    assert size == round(crop_ratio * 48)
    tokens = select_teacher_tokens(split, 'crop', num_folds, crop_ratio)
    assert tokens.fold_ids.shape == (3, num_folds, size // num_folds)
    assert tokens.target_rows is None
    for b in range(3):
        crop = as_set(tokens.fold_ids[b].flatten())
        assert len(crop) == size // num_folds * num_folds
        # the head of the (randomly ordered) masked ids: a random subset
        assert crop == as_set(
            split.ids_mask[b, :size // num_folds * num_folds])
        # left out: the fold remainder and the masked ids outside the crop
        assert crop | as_set(tokens.left_out[b]) == \
            as_set(split.ids_mask[b])
        assert len(tokens.left_out[b]) == 48 - size // num_folds * num_folds
        assert not crop & as_set(split.ids_keep[b])


@pytest.mark.parametrize('num_folds', [1, 4])
def test_full_image_targets_are_exactly_the_masked_tokens(num_folds):
    torch.manual_seed(2)
    split = random_token_split(3, NUM_TOKENS, 0.75)
    tokens = select_teacher_tokens(split, 'full', num_folds)
    assert tokens.fold_ids.shape == (3, num_folds, NUM_TOKENS // num_folds)
    assert tokens.left_out.shape == (3, 0)
    flat = tokens.fold_ids.flatten(1)
    for b in range(3):
        # the teacher encodes every patch once
        assert sorted(flat[b].tolist()) == list(range(NUM_TOKENS))
        assert as_set(tokens.target_ids[b]) == as_set(split.ids_mask[b])
        assert len(tokens.target_ids[b]) == 48
        # target_rows point at the target ids in the teacher's output rows
        assert flat[b, tokens.target_rows[b]].tolist() == \
            tokens.target_ids[b].tolist()
        # ... in the teacher's output order
        assert tokens.target_rows[b].tolist() == \
            sorted(tokens.target_rows[b].tolist())
    if num_folds == 1:
        assert torch.equal(flat, torch.arange(NUM_TOKENS).expand(3, -1))


def test_model_teacher_tokens_follow_its_config():
    split = random_token_split(2, NUM_TOKENS, 0.75)
    model = build(num_folds=3)
    tokens = model.teacher_tokens(split)
    assert isinstance(tokens, TeacherTokens)
    assert torch.equal(tokens.fold_ids,
                       split.ids_mask.reshape(2, 3, 16))
    crop = build(teacher_input='crop', crop_ratio=0.5, num_folds=2)
    assert torch.equal(crop.teacher_tokens(split).fold_ids,
                       split.ids_mask[:, :24].reshape(2, 2, 12))


def test_unknown_teacher_input_in_selection_raises():
    split = random_token_split(1, NUM_TOKENS, 0.75)
    with pytest.raises(ValueError, match='SdAE.teacher_input'):
        select_teacher_tokens(split, 'visible', 1)
    with pytest.raises(ValueError, match='SdAE.num_folds'):
        select_teacher_tokens(split, 'full', 3)


# ----------------------------------------------------------------------
# teacher sees only its fold
# ----------------------------------------------------------------------
def test_teacher_attention_is_confined_to_each_fold():
    model = build(num_folds=3)
    model.eval()
    x = images(batch=2)
    torch.manual_seed(4)
    split = random_token_split(2, NUM_TOKENS, 0.75)
    tokens = model.teacher_tokens(split)
    target = model.targets(x, tokens)
    assert target.shape == (2, 48, 64)

    changed = model.targets(
        perturb_patch(x, 0, tokens.fold_ids[0, 0, 5]), tokens)
    folds, folds_changed = target.view(2, 3, 16, 64), \
        changed.view(2, 3, 16, 64)
    # fold 0 of sample 0 sees the change (every one of its tokens attends
    # to the changed one) ...
    for row in range(16):
        assert not torch.allclose(folds[0, 0, row], folds_changed[0, 0, row],
                                  atol=1e-4)
    # ... folds 1 and 2, and the other sample, do not
    torch.testing.assert_close(folds_changed[0, 1:], folds[0, 1:],
                               atol=1e-6, rtol=0)
    torch.testing.assert_close(changed[1], target[1], atol=1e-6, rtol=0)

    # a visible patch is never seen by the teacher
    unchanged = model.targets(perturb_patch(x, 0, split.ids_keep[0, 0]),
                              tokens)
    torch.testing.assert_close(unchanged, target, atol=1e-6, rtol=0)


def test_left_out_tokens_are_not_seen_by_the_teacher():
    model = build(mask_ratio=0.7, num_folds=4)  # 45 masked: 1 left out
    x = images(batch=1)
    split = random_token_split(1, NUM_TOKENS, 0.7)
    tokens = model.teacher_tokens(split)
    target = model.targets(x, tokens)
    assert target.shape == (1, 44, 64)
    changed = model.targets(perturb_patch(x, 0, tokens.left_out[0, 0]),
                            tokens)
    torch.testing.assert_close(changed, target, atol=1e-6, rtol=0)


def test_full_image_targets_are_the_masked_rows_of_the_teacher_output():
    model = build(teacher_input='full', num_folds=1)
    scramble_final_norm(model)
    x = images(batch=2)
    split = random_token_split(2, NUM_TOKENS, 0.75)
    tokens = model.teacher_tokens(split)
    target = model.targets(x, tokens)
    # the teacher on the whole image (CLS dropped), at the masked ids
    whole = model.teacher(x)[0][:, 1:]
    expected = torch.stack([whole[b, tokens.target_ids[b]] for b in range(2)])
    torch.testing.assert_close(target, normalize_target(expected), atol=1e-5,
                               rtol=0)


# ----------------------------------------------------------------------
# target normalisation and loss
# ----------------------------------------------------------------------
def test_normalize_target_hand_computed():
    features = torch.tensor([[[1.0, 2.0, 3.0, 6.0], [-1.0, -1.0, 1.0, 1.0]]])
    # token 0: mean 3, biased var (4 + 1 + 0 + 9) / 4 = 3.5
    # token 1: mean 0, biased var 1
    eps = 1e-6
    want0 = [(v - 3.0) / math.sqrt(3.5 + eps) for v in (1, 2, 3, 6)]
    want1 = [v / math.sqrt(1.0 + eps) for v in (-1, -1, 1, 1)]
    got = normalize_target(features, eps)
    torch.testing.assert_close(got, torch.tensor([[want0, want1]]),
                               atol=1e-6, rtol=0)
    # eps is what it says
    got = normalize_target(features, eps=0.5)
    assert got[0, 1, 0].item() == pytest.approx(-1 / math.sqrt(1.5))


def test_cosine_distance_is_per_token_over_features():
    prediction = torch.tensor([[[1.0, 2.0], [3.0, -1.0]]])
    target = torch.tensor([[[2.0, 1.0], [1.0, 1.0]]])
    # per token over the features (the paper's Eq. 4)
    cos0 = (1 * 2 + 2 * 1) / (math.sqrt(5) * math.sqrt(5))  # 0.8
    cos1 = (3 * 1 - 1 * 1) / (math.sqrt(10) * math.sqrt(2))
    per_token = 1 - (cos0 + cos1) / 2
    # over the tokens, per channel (dim=1, the official code's objective)
    cos_f0 = (1 * 2 + 3 * 1) / (math.sqrt(10) * math.sqrt(5))
    cos_f1 = (2 * 1 - 1 * 1) / (math.sqrt(5) * math.sqrt(2))
    over_tokens = 1 - (cos_f0 + cos_f1) / 2
    assert abs(per_token - over_tokens) > 0.1
    got = cosine_distance(prediction, target).item()
    assert got == pytest.approx(per_token, abs=1e-6)
    assert got != pytest.approx(over_tokens, abs=1e-3)
    # the official reduction, one fold of both tokens
    folded = fold_cosine_distance(prediction, target, 1).item()
    assert folded == pytest.approx(over_tokens, abs=1e-6)


def test_fold_cosine_distance_is_per_fold_and_channel():
    g = torch.Generator().manual_seed(0)
    prediction = torch.randn(2, 6, 3, generator=g)
    target = torch.randn(2, 6, 3, generator=g)
    total = 0.0
    for b in range(2):
        for f in range(3):  # folds of 2 consecutive tokens
            for c in range(3):
                p = prediction[b, 2 * f:2 * f + 2, c]
                t = target[b, 2 * f:2 * f + 2, c]
                total += 1 - (p @ t / (p.norm() * t.norm())).item()
    got = fold_cosine_distance(prediction, target, 3).item()
    assert got == pytest.approx(total / 18, abs=1e-6)
    assert got != pytest.approx(
        fold_cosine_distance(prediction, target, 1).item(), abs=1e-3)
    with pytest.raises(ValueError, match='folds'):
        fold_cosine_distance(prediction, target, 4)


def test_cosine_distance_means_over_batch_and_tokens():
    prediction = torch.tensor([[[1.0, 0.0]], [[0.0, 2.0]], [[1.0, 1.0]]])
    target = torch.tensor([[[5.0, 0.0]], [[-1.0, 0.0]], [[-1.0, -1.0]]])
    # 1 - cos: 0, 1, 2
    assert cosine_distance(prediction, target).item() == pytest.approx(1.0)
    same = cosine_distance(target, target).item()
    assert same == pytest.approx(0.0, abs=1e-6)


def test_decoder_predicts_encoder_width_features():
    model = build()
    assert model.neck.decoder_pred.out_features == 64
    assert model.neck.decoder_embed.in_features == 64


def scramble_final_norm(model: SdAE) -> None:
    """Give the teacher's final LayerNorm a non-trivial affine map (as after
    EMA updates of a trained student), so that its outputs are no longer
    normalised per token and Eq. (3) is not a no-op."""
    with torch.no_grad():
        model.teacher.ln1.weight.uniform_(0.5, 2.0)
        model.teacher.ln1.bias.normal_()


def test_targets_are_normalised_per_token():
    model = build(num_folds=3)
    scramble_final_norm(model)
    x = images(batch=2)
    split = random_token_split(2, NUM_TOKENS, 0.75)
    tokens = model.teacher_tokens(split)
    raw = model.teacher(x, token_ids=tokens.fold_ids.flatten(1),
                        num_groups=3)[0][:, 1:]  # (B * 3, 16, C)
    assert raw.mean(-1).abs().max() > 0.1  # the teacher's own output is not
    target = model.targets(x, tokens)
    torch.testing.assert_close(target.mean(-1), torch.zeros(2, 48),
                               atol=1e-5, rtol=0)
    torch.testing.assert_close(target.var(-1, unbiased=False),
                               torch.ones(2, 48), atol=1e-3, rtol=0)
    torch.testing.assert_close(target, normalize_target(raw).reshape(
        2, 48, 64), atol=1e-5, rtol=0)


def test_loss_matches_the_equations_by_hand():
    # the per-token cosine, kept as loss_reduction='token'
    model = build(num_folds=3, loss_reduction='token')
    scramble_final_norm(model)
    x = images(batch=2, seed=5)
    torch.manual_seed(7)
    losses = model.loss(x, None)
    assert losses['teacher_updates'].item() == 0.0

    torch.manual_seed(7)
    split = random_token_split(2, NUM_TOKENS, 0.75)
    with torch.no_grad():
        # student: encoder on the visible tokens, decoder over all 64
        latent = model.backbone(x, token_ids=split.ids_keep)[0]
        prediction = model.neck(latent, split.ids_restore)
        total, count = 0.0, 0
        for b in range(2):
            for f in range(3):
                ids = split.ids_mask[b, 16 * f:16 * (f + 1)]
                # each fold encoded on its own, CLS dropped
                feats = model.teacher(x[b:b + 1], token_ids=ids[None])[0]
                for i, pid in enumerate(ids.tolist()):
                    t = feats[0, 1 + i]
                    t = (t - t.mean()) / torch.sqrt(
                        t.var(unbiased=False) + 1e-6)
                    p = prediction[b, pid]
                    cos = (p * t).sum() / (p.norm() * t.norm())
                    total += 1.0 - cos.item()
                    count += 1
    assert count == 96
    assert losses['loss'].item() == pytest.approx(total / count, abs=1e-5)


def channel_cosine_loss(p: Tensor, t: Tensor) -> Tensor:
    """(L, C) fold tensors: 1 − cos over the L tokens, per channel (C,)."""
    dot = torch.einsum('lc,lc->c', p, t)
    norms = torch.einsum('lc,lc->c', p, p).sqrt() * \
        torch.einsum('lc,lc->c', t, t).sqrt()
    return 1.0 - dot / norms


def by_hand_targets(t: Tensor) -> Tensor:
    mean = t.mean(-1, keepdim=True)
    var = ((t - mean)**2).mean(-1, keepdim=True)
    return (t - mean) / torch.sqrt(var + 1e-6)


@pytest.mark.parametrize('kwargs,fold_size', [
    (dict(teacher_input='masked', num_folds=3), 16),
    (dict(teacher_input='masked', num_folds=1), 48),
    (dict(teacher_input='crop', crop_ratio=0.5, num_folds=1), 24),
    (dict(teacher_input='full', num_folds=1), None),
])
def test_default_loss_is_the_official_objective(kwargs, fold_size):
    """Re-computed from raw tensors: official ``1 − F.cosine_similarity(
    teacher, student)`` (dim=1) on (B·t, n/t, C) folds (a cosine over a
    fold's tokens, per channel); per token for the full image (2-D)."""
    model = build(**kwargs)
    assert model.loss_reduction == 'fold'
    scramble_final_norm(model)
    x = images(batch=2, seed=5)
    torch.manual_seed(7)
    loss = model.loss(x, None)['loss'].item()

    torch.manual_seed(7)
    split = random_token_split(2, NUM_TOKENS, 0.75)
    terms = []
    with torch.no_grad():
        latent = model.backbone(x, token_ids=split.ids_keep)[0]
        prediction = model.neck(latent, split.ids_restore)  # (B, N, C)
        for b in range(2):
            if fold_size is None:  # teacher on all 64 patches, in order
                whole = by_hand_targets(model.teacher(x[b:b + 1])[0][0, 1:])
                for pid in split.ids_mask[b].tolist():
                    p, t = prediction[b, pid], whole[pid]
                    terms.append(1 - (p @ t) / (p.norm() * t.norm()))
                continue
            folds = 48 // fold_size if kwargs['teacher_input'] == 'masked' \
                else 1
            for f in range(folds):
                ids = split.ids_mask[b, fold_size * f:fold_size * (f + 1)]
                feats = model.teacher(x[b:b + 1], token_ids=ids[None])[0]
                t = by_hand_targets(feats[0, 1:])  # (L_f, C), CLS dropped
                p = prediction[b, ids]
                terms.extend(channel_cosine_loss(p, t))
    want = torch.stack(terms).mean().item()
    assert loss == pytest.approx(want, abs=1e-5)
    # ... and differs from the per-token cosine except for the full image
    torch.manual_seed(7)
    model.loss_reduction = 'token'
    token = model.loss(x, None)['loss'].item()
    if fold_size is None:
        assert token == pytest.approx(loss, abs=1e-6)
    else:
        assert abs(token - loss) > 1e-3


def test_normalize_target_off_gives_raw_teacher_features():
    model = build(num_folds=3, normalize_target=False)
    scramble_final_norm(model)
    x = images(batch=2)
    split = random_token_split(2, NUM_TOKENS, 0.75)
    tokens = model.teacher_tokens(split)
    raw = model.teacher(x, token_ids=tokens.fold_ids.flatten(1),
                        num_groups=3)[0][:, 1:].reshape(2, 48, 64)
    torch.testing.assert_close(model.targets(x, tokens), raw, atol=1e-6,
                               rtol=0)
    model.normalize_target = True
    torch.testing.assert_close(model.targets(x, tokens),
                               normalize_target(raw), atol=1e-5, rtol=0)


def test_loss_accepts_a_one_view_list_only():
    model = build()
    x = images()
    torch.manual_seed(0)
    want = model.loss(x, None)['loss']
    torch.manual_seed(0)
    torch.testing.assert_close(model.loss([x], None)['loss'], want)
    with pytest.raises(ValueError, match='one view'):
        model.loss([x, x], None)


# ----------------------------------------------------------------------
# collapse metric (target_token_cosine)
# ----------------------------------------------------------------------
def brute_force_token_cosine(tokens: Tensor) -> float:
    """Double loop over the ordered pairs i != j of each image."""
    per_image = []
    for image in tokens.double():
        total, count = 0.0, 0
        for i in range(len(image)):
            for j in range(len(image)):
                if i == j:
                    continue
                a, b = image[i], image[j]
                total += (a @ b / (a.norm() * b.norm())).item()
                count += 1
        per_image.append(total / count)
    return sum(per_image) / len(per_image)


@pytest.mark.parametrize('shape', [(3, 5, 4), (1, 2, 7), (2, 9, 16)])
def test_within_image_token_cosine_matches_a_double_loop(shape):
    g = torch.Generator().manual_seed(sum(shape))
    # a shared offset per image: the pairwise cosines are far from 0
    tokens = torch.randn(*shape, generator=g) + torch.randn(
        shape[0], 1, shape[2], generator=g)
    got = within_image_token_cosine(tokens)
    assert got.dim() == 0
    assert got.item() == pytest.approx(brute_force_token_cosine(tokens),
                                       abs=1e-6)


def test_within_image_token_cosine_is_per_image_not_across_images():
    # each image's tokens are identical, but the images differ: 1, not the
    # cosine between images
    tokens = torch.tensor([[[1.0, 0.0]] * 3, [[0.0, 1.0]] * 3])
    assert within_image_token_cosine(tokens).item() == pytest.approx(
        1.0, abs=1e-6)
    # image 0 collapsed (1), image 1 two opposite tokens (-1): mean 0
    tokens = torch.tensor([[[1.0, 2.0], [2.0, 4.0]],
                           [[1.0, 2.0], [-3.0, -6.0]]])
    assert within_image_token_cosine(tokens).item() == pytest.approx(
        0.0, abs=1e-6)


def test_within_image_token_cosine_collapse_and_spread_extremes():
    g = torch.Generator().manual_seed(0)
    # collapse: every token of an image is one vector times a positive
    # per-token scale
    direction = torch.randn(4, 1, 8, generator=g)
    scale = torch.rand(4, 6, 1, generator=g) * 10 + 0.1
    collapsed = within_image_token_cosine(direction * scale)
    assert collapsed.item() == pytest.approx(1.0, abs=1e-6)
    # T = 2 opposite vectors: -1
    v = torch.randn(3, 1, 8, generator=g)
    opposite = torch.cat([v, -3.0 * v], dim=1)
    assert within_image_token_cosine(opposite).item() == pytest.approx(
        -1.0, abs=1e-6)
    # T equal-norm tokens summing to zero (a regular simplex, centred):
    # every pairwise cosine is -1 / (T - 1)
    for num_tokens in (3, 5, 8):
        simplex = torch.eye(num_tokens) - 1.0 / num_tokens  # rows sum to 0
        rotation, _ = torch.linalg.qr(
            torch.randn(num_tokens, num_tokens, generator=g))
        tokens = (simplex @ rotation)[None].expand(2, -1, -1)
        norms = tokens.norm(dim=-1)
        torch.testing.assert_close(norms, norms[0, :1].expand_as(norms))
        got = within_image_token_cosine(tokens).item()
        assert got == pytest.approx(-1.0 / (num_tokens - 1), abs=1e-6)


def test_within_image_token_cosine_edge_cases():
    assert torch.isnan(within_image_token_cosine(torch.randn(2, 1, 4)))
    with pytest.raises(ValueError, match='B, T, C'):
        within_image_token_cosine(torch.randn(4, 8))
    half = within_image_token_cosine(torch.ones(1, 3, 4).half())
    assert half.dtype == torch.float32
    assert half.item() == pytest.approx(1.0, abs=1e-6)


def test_loss_logs_the_target_token_cosine_of_its_targets():
    from mmengine.model import BaseModel
    model = build(num_folds=3)
    scramble_final_norm(model)
    x = images(batch=2, seed=5)
    torch.manual_seed(7)
    losses = model.loss(x, None)
    assert not any('loss' in k for k in losses if k != 'loss')
    metric = losses['target_token_cosine']
    assert metric.dim() == 0 and metric.dtype == torch.float32
    assert not metric.requires_grad
    assert losses['loss'].requires_grad
    assert torch.isfinite(metric) and -1.0 <= metric.item() <= 1.0

    # the same tokens (the same seed) give the same targets
    torch.manual_seed(7)
    plan = model.mask_generator(2, (GRID, GRID))
    target = model.targets(x, teacher_tokens_of(plan))
    assert target.shape == (2, 48, 64)
    want = within_image_token_cosine(target).item()
    assert metric.item() == pytest.approx(want, abs=1e-6)
    assert want == pytest.approx(brute_force_token_cosine(target), abs=1e-5)

    # logged, not summed into the total loss
    total, log_vars = BaseModel.parse_losses(model, losses)
    torch.testing.assert_close(total, losses['loss'])
    assert float(log_vars['target_token_cosine']) == pytest.approx(
        metric.item())
    assert float(log_vars['loss'].detach()) == pytest.approx(
        losses['loss'].item())


# ----------------------------------------------------------------------
# EMA
# ----------------------------------------------------------------------
def test_cosine_momentum_schedule():
    assert cosine_momentum(0.96, 0.99, 0.0) == pytest.approx(0.96)
    assert cosine_momentum(0.96, 0.99, 1.0) == pytest.approx(0.99)
    assert cosine_momentum(0.96, 0.99, 0.5) == pytest.approx(0.975)
    quarter = 0.99 + (0.96 - 0.99) * (1 + math.cos(math.pi / 4)) / 2
    assert cosine_momentum(0.96, 0.99, 0.25) == pytest.approx(quarter)
    model = build(base_momentum=0.9, end_momentum=0.95)
    assert model.teacher_momentum(0.0) == pytest.approx(0.9)
    assert model.teacher_momentum(1.0) == pytest.approx(0.95)
    assert model.teacher_momentum(0.5) == pytest.approx(0.925)
    assert model.teacher_momentum(0.25) == pytest.approx(
        cosine_momentum(0.9, 0.95, 0.25))


def test_teacher_is_the_encoder_only_and_starts_random_by_default():
    model = build()
    assert model.teacher.state_dict().keys() == \
        model.backbone.state_dict().keys()
    assert not any('mask_token' in k or 'decoder' in k
                   for k in model.teacher.state_dict())
    # official: independently initialised
    assert not torch.equal(model.teacher.layers[0].attn.qkv.weight,
                           model.backbone.layers[0].attn.qkv.weight)
    copied = build(teacher_init='student')
    for key, value in copied.backbone.state_dict().items():
        assert torch.equal(copied.teacher.state_dict()[key], value), key


def test_teacher_init_is_the_official_timm_vit():
    """Linear trunc_normal(0.02) + zero bias, LayerNorm 1 / 0, a random
    trunc_normal(0.02) pos_embed and CLS token (not the student's sin-cos).
    """
    model = MODELS.build(sdae_cfg(
        backbone=dict(sdae_cfg()['backbone'], arch=dict(
            embed_dims=256, num_layers=2, num_heads=4,
            feedforward_channels=1024))))
    torch.manual_seed(0)
    model.init_weights()
    teacher = model.teacher
    linears = [m for m in teacher.modules() if isinstance(m, torch.nn.Linear)]
    assert linears
    for layer in linears:
        assert layer.weight.std().item() == pytest.approx(0.02, rel=0.05)
        # (timm's trunc_normal_ cuts at ±2 absolute: a normal in effect)
        assert torch.equal(layer.bias, torch.zeros_like(layer.bias))
    for norm in [m for m in teacher.modules()
                 if isinstance(m, torch.nn.LayerNorm)]:
        assert torch.equal(norm.weight, torch.ones_like(norm.weight))
        assert torch.equal(norm.bias, torch.zeros_like(norm.bias))
    assert teacher.pos_embed.std().item() == pytest.approx(0.02, rel=0.1)
    assert teacher.cls_token.std().item() == pytest.approx(0.02, rel=0.2)
    assert not torch.allclose(teacher.pos_embed, model.backbone.pos_embed,
                              atol=0.1)
    # the teacher's pos_embed is a parameter EMA pulls toward the student's
    assert 'pos_embed' in dict(teacher.named_parameters())
    before = teacher.pos_embed.detach().clone()
    model.update_teacher(0.5)
    torch.testing.assert_close(
        teacher.pos_embed, 0.5 * before + 0.5 * model.backbone.pos_embed)


def test_student_init_is_mae():
    """Patch embedding xavier_uniform on the flattened weight, CLS normal
    (0.02), Linear xavier_uniform, sin-cos position embedding."""
    model = MODELS.build(sdae_cfg(
        backbone=dict(sdae_cfg()['backbone'], arch=dict(
            embed_dims=256, num_layers=1, num_heads=4,
            feedforward_channels=256)),
        init_cfg=[
            dict(type='Xavier', layer='Linear', distribution='uniform'),
            dict(type='Constant', layer='LayerNorm', val=1.0, bias=0.0)]))
    torch.manual_seed(0)
    model.init_weights()
    weight = model.backbone.patch_embed.projection.weight  # (256, 3, 4, 4)
    fan_in, fan_out = weight[0].numel(), weight.shape[0]
    bound = math.sqrt(6 / (fan_in + fan_out))
    assert weight.abs().max().item() <= bound + 1e-6
    assert weight.abs().max().item() > 0.9 * bound
    assert weight.std().item() == pytest.approx(bound / math.sqrt(3),
                                                rel=0.05)
    cls = model.backbone.cls_token
    assert cls.std().item() == pytest.approx(0.02, rel=0.2)


def test_update_teacher_is_the_ema_equation():
    model = build()
    # make the student differ from its init, like after some training
    with torch.no_grad():
        for param in model.backbone.parameters():
            param.add_(torch.randn_like(param) * 0.1)
        model.neck.mask_token.add_(1.0)
    teacher, student, neck = (snapshot(model.teacher),
                              snapshot(model.backbone), snapshot(model.neck))
    model.update_teacher(0.9)
    assert model.teacher_updates.item() == 1
    for name, param in model.teacher.named_parameters():
        want = 0.9 * teacher[name] + 0.1 * student[name]
        torch.testing.assert_close(param.data, want, atol=1e-6, rtol=0)
        assert not param.requires_grad
    # the student, its decoder and mask token are untouched
    for key, value in model.backbone.state_dict().items():
        assert torch.equal(value, student[key]), key
    for key, value in model.neck.state_dict().items():
        assert torch.equal(value, neck[key]), key
    model.update_teacher(0.5)
    assert model.teacher_updates.item() == 2


def test_momentum_zero_copies_and_one_keeps():
    model = build(base_momentum=0.0, end_momentum=1.0)
    before = snapshot(model.teacher)
    model.update_teacher(1.0)
    for key, value in model.teacher.state_dict().items():
        assert torch.equal(value, before[key]), key
    model.update_teacher(0.0)
    for key, value in model.teacher.state_dict().items():
        assert torch.equal(value, model.backbone.state_dict()[key]), key
    assert model.teacher_updates.item() == 2
    with pytest.raises(ValueError, match='momentum'):
        model.update_teacher(1.5)


# ----------------------------------------------------------------------
# gradients and modes
# ----------------------------------------------------------------------
def test_teacher_gets_no_gradients_and_stays_in_eval_mode():
    model = build()
    model.train()
    assert model.backbone.training and model.neck.training
    assert not model.teacher.training
    assert not any(m.training for m in model.teacher.modules())
    losses = model.loss(images(), None)
    losses['loss'].backward()
    for name, param in model.teacher.named_parameters():
        assert not param.requires_grad and param.grad is None, name
    # the fixed sin-cos position embeddings are not trained
    assert not model.backbone.pos_embed.requires_grad
    assert model.backbone.pos_embed.grad is None
    trained = [(n, p) for n, p in model.named_parameters()
               if p.requires_grad]
    assert {n.split('.')[0] for n, _ in trained} == {'backbone', 'neck'}
    assert any(n == 'neck.mask_token' for n, _ in trained)
    for name, param in trained:
        assert param.grad is not None and param.grad.abs().sum() > 0, name
    model.eval()
    model.train()
    assert not model.teacher.training


def test_tiny_sdae_overfits_a_fixed_batch(one_thread):
    # the constant baseline below is per token: loss_reduction='token'
    model = build(num_folds=3, loss_reduction='token')
    model.train()
    x = images(batch=2, seed=3)
    teacher = snapshot(model.teacher)
    # what predicting one constant (the mean target) would score: the
    # student must beat it, not only learn the targets' shared direction
    torch.manual_seed(0)
    split = random_token_split(2, NUM_TOKENS, 0.75)
    target = model.targets(x, model.teacher_tokens(split))
    constant = cosine_distance(
        target.mean(dim=(0, 1), keepdim=True).expand_as(target),
        target).item()
    optimizer = torch.optim.Adam(
        [p for p in model.parameters() if p.requires_grad], lr=3e-3)
    losses = []
    for _ in range(150):
        torch.manual_seed(0)  # the same split every step
        loss = model.loss(x, None)['loss']
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0], (losses[0], losses[-1])
    assert losses[-1] < 0.6 * constant, (constant, losses[-1])
    # no EMA update happened inside the forward pass
    for key, value in model.teacher.state_dict().items():
        assert torch.equal(value, teacher[key]), key
    assert model.teacher_updates.item() == 0


# ----------------------------------------------------------------------
# checkpoints
# ----------------------------------------------------------------------
def test_state_dict_restores_the_teacher_exactly():
    model = build(seed=0)
    with torch.no_grad():
        for param in model.backbone.parameters():
            param.add_(torch.randn_like(param))
    model.update_teacher(0.7)
    model.update_teacher(0.8)
    state = model.state_dict()
    assert 'teacher_updates' in state and state['teacher_updates'] == 2
    teacher_keys = {k for k in state if k.startswith('teacher.')}
    assert teacher_keys == {f'teacher.{k}'
                            for k in model.teacher.state_dict()}

    fresh = build(seed=1)
    assert not torch.equal(fresh.teacher.layers[0].attn.qkv.weight,
                           model.teacher.layers[0].attn.qkv.weight)
    fresh.load_state_dict(copy.deepcopy(state))
    for key, value in state.items():
        assert torch.equal(fresh.state_dict()[key], value), key
    assert fresh.teacher_updates.item() == 2
    # and it keeps going identically
    model.update_teacher(0.9)
    fresh.update_teacher(0.9)
    for key, value in model.state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value), key


# ----------------------------------------------------------------------
# config checks
# ----------------------------------------------------------------------
@pytest.mark.parametrize('kwargs,field', [
    (dict(num_folds=0), 'SdAE.num_folds'),
    (dict(num_folds=49), 'SdAE.num_folds'),  # 48 masked tokens
    (dict(num_folds=2.0), 'SdAE.num_folds'),
    (dict(teacher_input='crop', crop_ratio=0.05, num_folds=3),
     'SdAE.num_folds'),  # a crop of 2 tokens
    (dict(teacher_input='full', num_folds=3), 'SdAE.num_folds'),
    (dict(teacher_input='full', num_folds=65), 'SdAE.num_folds'),
    (dict(teacher_input='crop', crop_ratio=0), 'SdAE.crop_ratio'),
    (dict(teacher_input='crop', crop_ratio=1.5), 'SdAE.crop_ratio'),
    (dict(teacher_input='crop'), 'SdAE.crop_ratio'),
    (dict(crop_ratio=0.5), 'SdAE.crop_ratio'),
    (dict(teacher_input='full', crop_ratio=0.5), 'SdAE.crop_ratio'),
    (dict(mask_ratio=1.0), 'SdAE.mask_ratio'),
    (dict(mask_ratio=-0.1), 'SdAE.mask_ratio'),
    (dict(base_momentum=1.5), 'SdAE.base_momentum'),
    (dict(base_momentum=-0.1), 'SdAE.base_momentum'),
    (dict(end_momentum=1.5), 'SdAE.end_momentum'),
    (dict(end_momentum=-0.1), 'SdAE.end_momentum'),
    (dict(teacher_input='visible'), 'SdAE.teacher_input'),
    (dict(momentum_update='step'), 'SdAE.momentum_update'),
    (dict(teacher_init='zeros'), 'SdAE.teacher_init'),
    (dict(loss_reduction='channel'), 'SdAE.loss_reduction'),
    (dict(normalize_target='yes'), 'SdAE.normalize_target'),
])
def test_bad_config_values_raise_naming_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field.replace('.', r'\.')):
        MODELS.build(sdae_cfg(**kwargs))


def test_decoder_width_mismatch_raises():
    for key in ('embed_dim', 'predict_feature_dim'):
        cfg = sdae_cfg()
        cfg['neck'] = dict(cfg['neck'], **{key: 32})
        with pytest.raises(ValueError, match=rf'SdAE\.neck\.{key}'):
            MODELS.build(cfg)


def test_backbone_must_output_its_last_layer():
    cfg = sdae_cfg()
    cfg['backbone'] = dict(cfg['backbone'], out_indices=[0])
    with pytest.raises(ValueError, match='out_indices'):
        MODELS.build(cfg)


def test_loss_reduction_error_lists_the_allowed_values():
    with pytest.raises(ValueError, match=r"\('fold', 'token'\)"):
        MODELS.build(sdae_cfg(loss_reduction='channel'))


def test_fast_per_iteration_ema_warns(monkeypatch):
    import logging

    import mmmoma.models.selfsup.sdae as sdae_module
    logged = []
    monkeypatch.setattr(
        sdae_module, 'print_log',
        lambda msg, logger=None, level=logging.INFO: logged.append(
            (msg, level)))
    # official 0.96 applied every iteration: half-life 17 iterations
    MODELS.build(sdae_cfg(momentum_update='iter', base_momentum=0.96,
                          end_momentum=0.99))
    assert len(logged) == 1
    msg, level = logged[0]
    assert level == logging.WARNING
    assert re.search(r'SdAE\.base_momentum=0\.96.*iter.*17\.0 iterations',
                     msg), msg
    logged.clear()
    # half-life 693 iterations; per-epoch updates never warn
    MODELS.build(sdae_cfg(momentum_update='iter', base_momentum=0.999,
                          end_momentum=0.9999))
    MODELS.build(sdae_cfg(momentum_update='epoch', base_momentum=0.5))
    assert logged == []


@pytest.mark.parametrize('kwargs', [
    dict(base_momentum=0.0, end_momentum=1.0),
    dict(base_momentum=1.0, end_momentum=0.0),
    dict(num_folds=48),
    dict(teacher_input='full', num_folds=64),
    dict(teacher_input='crop', crop_ratio=1.0, num_folds=48),
])
def test_edge_values_are_allowed(kwargs):
    model = MODELS.build(sdae_cfg(**kwargs))
    model.init_weights()
    loss = model.loss(images(batch=1), None)['loss']
    assert torch.isfinite(loss)
