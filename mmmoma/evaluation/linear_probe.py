"""Linear probe and evaluation seeds for frozen features.

The linear probe (as MoCo v3 and M-MoCo report it, made cheap for a demo):
the frozen features are extracted once, standardised with the labelled
set's per-dimension mean and standard deviation, and an L2-regularised
multinomial logistic regression (scikit-learn, L-BFGS, deterministic) is
fitted on them; the score is the top-1 accuracy on the held-out set.

An *evaluation seed* draws the labelled set: :func:`labelled_subset` keeps
``labels_per_class`` train samples of every class, chosen by the seed, so
that the same frozen features give a spread of scores over seeds (for a
randomly initialised network the seed also draws the network). Every
protocol and every row see the same subsets.

:func:`summarize` and :func:`beats` turn per-seed scores into the demo
table's ``mean ± std`` and its "beats random init" test (difference of
means larger than twice the pooled standard deviation).
"""
import math
from typing import Dict, List, Sequence

import numpy as np
import torch

from .knn import _check_features_and_labels


def labelled_subset(labels: torch.Tensor, labels_per_class: int,
                    seed: int) -> torch.Tensor:
    """Indices of a class-balanced random subset of ``labels``.

    Args:
        labels (Tensor): (N,) integer class labels.
        labels_per_class (int): samples kept of every class; every class
            must have at least that many.
        seed (int): draws the subset (numpy ``default_rng``).

    Returns:
        Tensor: (C * labels_per_class,) sorted int64 indices into labels.

    Raises:
        ValueError: ``labels_per_class`` < 1, or a class has fewer samples.
    """
    if labels_per_class < 1:
        raise ValueError(f'labels_per_class must be >= 1, got '
                         f'{labels_per_class}')
    rng = np.random.default_rng(seed)
    labels_np = labels.cpu().numpy()
    keep = []
    for cls in np.unique(labels_np):
        members = np.flatnonzero(labels_np == cls)
        if len(members) < labels_per_class:
            raise ValueError(
                f'labels_per_class={labels_per_class} but class {cls} has '
                f'only {len(members)} labelled samples')
        keep.append(rng.choice(members, labels_per_class, replace=False))
    return torch.from_numpy(np.sort(np.concatenate(keep))).long()


def standardize(train_feats: torch.Tensor, val_feats: torch.Tensor,
                eps: float = 1e-6) -> tuple:
    """Both sets standardised with the train set's per-dimension statistics.

    Args:
        train_feats (Tensor): (N, D).
        val_feats (Tensor): (M, D).

    Returns:
        tuple[Tensor, Tensor]: (N, D) and (M, D) float64 features.
    """
    train_feats = train_feats.double()
    mean = train_feats.mean(0)
    std = train_feats.std(0, unbiased=False) + eps
    return (train_feats - mean) / std, (val_feats.double() - mean) / std


def linear_probe_top1(train_feats: torch.Tensor,
                      train_labels: torch.Tensor,
                      val_feats: torch.Tensor,
                      val_labels: torch.Tensor,
                      inverse_regularization: float = 1.0,
                      max_iter: int = 1000) -> float:
    """Top-1 (%) of a logistic regression fitted on standardised features.

    Args:
        train_feats (Tensor): (N, D) labelled features.
        train_labels (Tensor): (N,) their classes.
        val_feats (Tensor): (M, D) held-out features.
        val_labels (Tensor): (M,) their classes.
        inverse_regularization (float): scikit-learn's ``C`` (inverse L2
            strength). Defaults to 1.0.
        max_iter (int): L-BFGS iterations. Defaults to 1000.

    Returns:
        float: val top-1 accuracy in percent.
    """
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    _check_features_and_labels(train_feats, train_labels, 'train')
    _check_features_and_labels(val_feats, val_labels, 'val')
    if train_feats.shape[1] != val_feats.shape[1]:
        # (M, 1) val features would otherwise broadcast against the train
        # statistics without an error
        raise ValueError(f'train_feats and val_feats must have the same '
                         f'feature dim, got {train_feats.shape[1]} and '
                         f'{val_feats.shape[1]}')
    train_x, val_x = standardize(train_feats, val_feats)
    classifier = LogisticRegression(
        C=inverse_regularization, max_iter=max_iter)
    with warnings.catch_warnings():
        # a probe that has not converged in max_iter is still a probe
        warnings.simplefilter('ignore', ConvergenceWarning)
        classifier.fit(train_x.cpu().numpy(), train_labels.cpu().numpy())
    predicted = classifier.predict(val_x.cpu().numpy())
    return float(100.0 * (predicted == val_labels.cpu().numpy()).mean())


def summarize(scores: Sequence[float]) -> Dict[str, float]:
    """Mean and sample standard deviation (ddof 1; 0 for one score)."""
    scores = [float(s) for s in scores]
    if not scores:
        raise ValueError('no scores to summarise')
    mean = sum(scores) / len(scores)
    if len(scores) == 1:
        return dict(mean=mean, std=0.0, n=1)
    var = sum((s - mean)**2 for s in scores) / (len(scores) - 1)
    return dict(mean=mean, std=math.sqrt(var), n=len(scores))


def beats(scores: Sequence[float], baseline: Sequence[float],
          num_std: float = 2.0) -> bool:
    """Whether ``scores`` beat ``baseline`` beyond seed noise.

    True when mean(scores) − mean(baseline) > ``num_std`` × the pooled
    standard deviation sqrt((s₁² + s₂²) / 2) of the two sets. With zero
    spread on both sides any positive difference counts.
    """
    ours, theirs = summarize(scores), summarize(baseline)
    pooled = math.sqrt((ours['std']**2 + theirs['std']**2) / 2)
    return ours['mean'] - theirs['mean'] > num_std * pooled


def format_mean_std(scores: List[float]) -> str:
    """``'mean ± std'`` with one decimal."""
    stats = summarize(scores)
    return f'{stats["mean"]:.1f} ± {stats["std"]:.1f}'
