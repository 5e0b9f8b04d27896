"""Linear probe, evaluation seeds and the mean ± std / "beats" summary."""
import math
import statistics

import numpy as np
import pytest
import torch

from mmmoma.evaluation.linear_probe import (beats, format_mean_std,
                                            labelled_subset, linear_probe_top1,
                                            standardize, summarize)


def unbalanced_labels(seed: int = 0) -> torch.Tensor:
    """Class c has 5 + c samples (c = 0 … 5), in shuffled order."""
    labels = torch.cat([torch.full((5 + c, ), c) for c in range(6)])
    g = torch.Generator().manual_seed(seed)
    return labels[torch.randperm(len(labels), generator=g)]


def gaussian_blobs(num_classes: int, per_class: int, dim: int,
                   separation: float, seed: int) -> tuple:
    """Unit-variance blobs around ``separation * e_c`` (class c)."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(num_classes).repeat_interleave(per_class)
    means = separation * torch.eye(num_classes, dim)
    feats = means[labels] + torch.randn(len(labels), dim, generator=g)
    return feats, labels


# ----------------------------------------------------------------------
# labelled_subset
# ----------------------------------------------------------------------
def test_labelled_subset_is_class_balanced_unique_and_sorted():
    labels = unbalanced_labels()
    idx = labelled_subset(labels, 4, seed=0)
    assert idx.dtype == torch.int64
    assert len(idx) == 6 * 4
    assert idx.tolist() == sorted(set(idx.tolist()))  # unique, sorted
    assert 0 <= idx.min() and idx.max() < len(labels)
    counts = torch.bincount(labels[idx], minlength=6)
    assert counts.tolist() == [4] * 6


def test_labelled_subset_takes_a_whole_class_when_it_must():
    labels = unbalanced_labels()
    idx = labelled_subset(labels, 5, seed=3)  # class 0 has exactly 5
    assert set(idx[labels[idx] == 0].tolist()) == set(
        torch.nonzero(labels == 0).flatten().tolist())


def test_labelled_subset_seed_determines_the_subset():
    labels = unbalanced_labels()
    first = labelled_subset(labels, 3, seed=0)
    assert torch.equal(first, labelled_subset(labels, 3, seed=0))
    assert not torch.equal(first, labelled_subset(labels, 3, seed=1))
    # a spread over seeds, not one subset
    subsets = {tuple(labelled_subset(labels, 3, seed=s).tolist())
               for s in range(10)}
    assert len(subsets) == 10


def test_labelled_subset_errors():
    labels = torch.tensor([0, 0, 0, 1, 1, 1, 7, 7])
    with pytest.raises(ValueError,
                       match=r'class 7 has only 2 labelled samples'):
        labelled_subset(labels, 3, seed=0)
    # 2 per class is fine
    assert len(labelled_subset(labels, 2, seed=0)) == 6
    for bad in (0, -1):
        with pytest.raises(ValueError, match='labels_per_class must be >= 1'):
            labelled_subset(labels, bad, seed=0)


# ----------------------------------------------------------------------
# standardize
# ----------------------------------------------------------------------
def test_standardize_uses_the_train_statistics_for_both_sets():
    g = torch.Generator().manual_seed(0)
    scale = torch.tensor([0.5, 3.0, 10.0])
    shift = torch.tensor([-4.0, 0.0, 7.0])
    train = (torch.randn(50, 3, generator=g) * scale + shift).float()
    # the val set: twice the spread, shifted by 5 train stds
    val = torch.randn(20, 3, generator=g) * 2 * scale + shift + 5.0 * scale

    train_x, val_x = standardize(train, val)
    assert train_x.dtype == val_x.dtype == torch.float64
    zeros = torch.zeros(3, dtype=torch.float64)
    torch.testing.assert_close(train_x.mean(0), zeros, atol=1e-10, rtol=0)
    torch.testing.assert_close(train_x.std(0, unbiased=False),
                               torch.ones(3, dtype=torch.float64),
                               atol=1e-5, rtol=0)

    # by hand, in numpy: the train mean and (biased) std, plus eps
    t, v = train.double().numpy(), val.double().numpy()
    mean, std = t.mean(0), t.std(0) + 1e-6
    np.testing.assert_allclose(train_x.numpy(), (t - mean) / std,
                               rtol=0, atol=1e-12)
    np.testing.assert_allclose(val_x.numpy(), (v - mean) / std,
                               rtol=0, atol=1e-12)
    # ... not the val set's own statistics
    assert val_x.mean(0).abs().min() > 3.0
    assert (val_x.std(0, unbiased=False) - 1).abs().min() > 0.3


def test_standardize_leaves_a_constant_dimension_finite():
    train = torch.tensor([[1.0, 5.0], [3.0, 5.0]])
    val = torch.tensor([[2.0, 6.0]])
    train_x, val_x = standardize(train, val)
    assert torch.equal(train_x[:, 1], torch.zeros(2, dtype=torch.float64))
    assert val_x[0, 0].item() == pytest.approx(0.0)
    assert val_x[0, 1].item() == pytest.approx(1.0 / 1e-6)


# ----------------------------------------------------------------------
# linear_probe_top1
# ----------------------------------------------------------------------
def test_linear_probe_separates_well_separated_blobs():
    train_x, train_y = gaussian_blobs(4, 30, 8, separation=12.0, seed=0)
    val_x, val_y = gaussian_blobs(4, 25, 8, separation=12.0, seed=1)
    assert linear_probe_top1(train_x, train_y, val_x, val_y) == 100.0


def test_linear_probe_scores_the_fraction_of_correct_labels():
    train_x, train_y = gaussian_blobs(4, 30, 8, separation=12.0, seed=0)
    val_x, val_y = gaussian_blobs(4, 25, 8, separation=12.0, seed=1)
    wrong = val_y.clone()
    wrong[::4] = (wrong[::4] + 1) % 4  # 25 of the 100 labels changed
    assert linear_probe_top1(train_x, train_y, val_x, wrong) == \
        pytest.approx(75.0)


def test_linear_probe_is_at_chance_on_random_labels():
    g = torch.Generator().manual_seed(0)
    train_x = torch.randn(500, 16, generator=g)
    train_y = torch.randint(0, 10, (500, ), generator=g)
    val_x = torch.randn(500, 16, generator=g)
    val_y = torch.randint(0, 10, (500, ), generator=g)
    score = linear_probe_top1(train_x, train_y, val_x, val_y)
    assert 0.0 <= score < 35.0
    # the same probe on its own train set fits the noise better than that
    assert linear_probe_top1(train_x, train_y, train_x, train_y) > score


def test_linear_probe_is_deterministic():
    train_x, train_y = gaussian_blobs(5, 20, 6, separation=1.5, seed=2)
    val_x, val_y = gaussian_blobs(5, 20, 6, separation=1.5, seed=3)
    first = linear_probe_top1(train_x, train_y, val_x, val_y)
    assert 20.0 < first < 100.0  # a non-trivial score
    assert linear_probe_top1(train_x, train_y, val_x, val_y) == first


def test_linear_probe_rejects_mismatched_shapes():
    x, y = gaussian_blobs(3, 4, 5, separation=5.0, seed=0)
    with pytest.raises(ValueError, match='train_labels'):
        linear_probe_top1(x, y[:-1], x, y)
    with pytest.raises(ValueError, match='val_labels'):
        linear_probe_top1(x, y, x, y[:-1])
    with pytest.raises(ValueError, match='train_feats'):
        linear_probe_top1(x[:, 0], y, x, y)
    with pytest.raises(ValueError, match='val_feats'):
        linear_probe_top1(x, y, x[None], y)
    # a different feature dim, even one that would broadcast
    with pytest.raises(ValueError, match='same feature dim'):
        linear_probe_top1(x, y, x[:, :1], y)
    with pytest.raises(ValueError, match='same feature dim'):
        linear_probe_top1(x, y, x[:, :4], y)


# ----------------------------------------------------------------------
# summarize / beats / format_mean_std
# ----------------------------------------------------------------------
def test_summarize_is_the_mean_and_sample_std():
    scores = [61.2, 63.5, 58.9, 70.0, 64.4]
    stats = summarize(scores)
    assert stats['n'] == 5
    assert stats['mean'] == pytest.approx(statistics.mean(scores), abs=1e-12)
    assert stats['std'] == pytest.approx(statistics.stdev(scores), abs=1e-12)
    # ddof 1, not the population std
    assert stats['std'] != pytest.approx(statistics.pstdev(scores), abs=1e-3)
    # tensors and numpy scalars are accepted
    tensor_stats = summarize([torch.tensor(s) for s in scores])
    assert tensor_stats['mean'] == pytest.approx(stats['mean'], abs=1e-4)


def test_summarize_edge_cases():
    assert summarize([42.0]) == dict(mean=42.0, std=0.0, n=1)
    assert summarize([3.0, 3.0, 3.0])['std'] == 0.0
    with pytest.raises(ValueError, match='no scores'):
        summarize([])


@pytest.mark.parametrize('shift,num_std,expected', [
    # pooled std sqrt((2² + 0²) / 2) = sqrt(2); threshold 2 * sqrt(2)
    (2.83, 2.0, True),
    (2.82, 2.0, False),
    # threshold sqrt(2) = 1.41421...
    (1.42, 1.0, True),
    (1.41, 1.0, False),
])
def test_beats_is_two_pooled_stds(shift, num_std, expected):
    scores = [shift - 2.0, shift, shift + 2.0]  # mean shift, std 2
    baseline = [0.0, 0.0]  # mean 0, std 0
    assert statistics.stdev(scores) == pytest.approx(2.0)
    assert math.isclose(
        math.sqrt((statistics.stdev(scores)**2 + 0.0) / 2), math.sqrt(2))
    assert beats(scores, baseline, num_std=num_std) is expected
    # the default is two pooled stds
    if num_std == 2.0:
        assert beats(scores, baseline) is expected
    # and a worse set never beats the baseline
    assert not beats(baseline, scores, num_std=num_std)


def test_beats_pools_both_spreads():
    # std 1 and std 3: pooled sqrt((1 + 9) / 2) = sqrt(5), 2 * sqrt(5) = 4.472
    baseline = [9.0, 10.0, 11.0]  # mean 10, std 1
    assert statistics.stdev([0.0, 3.0, 6.0]) == pytest.approx(3.0)
    # mean 14.48: 4.48 above the baseline; mean 14.47: 4.47
    assert beats([11.48, 14.48, 17.48], baseline) is True
    assert beats([11.47, 14.47, 17.47], baseline) is False


def test_beats_equal_means_and_zero_spread():
    assert not beats([5.0, 7.0], [6.0, 6.0])
    assert not beats([6.0], [6.0])
    assert not beats([6.0, 6.0], [6.0, 6.0])
    # with no spread on either side any positive difference counts
    assert beats([6.01], [6.0])
    assert beats([6.01, 6.01], [6.0, 6.0, 6.0])


def test_format_mean_std():
    assert format_mean_std([1.0, 2.0, 3.0]) == '2.0 ± 1.0'
    assert format_mean_std([5.0]) == '5.0 ± 0.0'
    # mean 70.3, std 0.0566 -> one decimal each
    assert format_mean_std([70.26, 70.34]) == '70.3 ± 0.1'
    assert format_mean_std([10.04, 12.96, 11.5]) == '11.5 ± 1.5'
    with pytest.raises(ValueError):
        format_mean_std([])
