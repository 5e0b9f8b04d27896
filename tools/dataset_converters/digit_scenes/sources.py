"""The real sources of the digit scenes and their train / val digit split.

Digits: scikit-learn's ``load_digits`` (1,797 scans, 8×8, 10 classes).
Backgrounds: scikit-learn's ``load_sample_images`` (two 427×640 photos).
"""
from typing import Dict, List, NamedTuple

import numpy as np

#: the ten digit classes, as folder / class names
CLASS_NAMES = tuple(str(digit) for digit in range(10))


class Sources(NamedTuple):
    """What every scene is drawn from.

    Attributes:
        digits (np.ndarray): (1797, 8, 8) float64 intensities in [0, 1].
        labels (np.ndarray): (1797,) int64 digit classes.
        photos (list[np.ndarray]): the photographs, each (H, W, 3) uint8.
    """
    digits: np.ndarray
    labels: np.ndarray
    photos: List[np.ndarray]


def load_sources() -> Sources:
    """Load scikit-learn's digits and sample photographs.

    Returns:
        Sources: the digits (scaled to [0, 1]), their labels and the photos.
    """
    from sklearn.datasets import load_digits, load_sample_images

    digits = load_digits()
    photos = load_sample_images().images
    return Sources(digits.images.astype(np.float64) / 16.0,
                   digits.target.astype(np.int64), list(photos))


def _proportional_quotas(class_counts: np.ndarray, total: int) -> np.ndarray:
    """Split ``total`` over classes proportionally to ``class_counts``.

    Largest-remainder rounding; ties go to the lower class index.

    Args:
        class_counts (np.ndarray): (C,) number of members of every class.
        total (int): Number to share out.

    Returns:
        np.ndarray: (C,) int64 quotas summing to ``total``.
    """
    exact = class_counts * total / class_counts.sum()
    quotas = np.floor(exact).astype(np.int64)
    remainders = exact - quotas
    order = sorted(range(len(class_counts)), key=lambda c: (-remainders[c], c))
    for c in order[:total - quotas.sum()]:
        quotas[c] += 1
    return quotas


def split_digit_indices(labels: np.ndarray, num_train: int, num_val: int,
                        seed: int) -> Dict[str, np.ndarray]:
    """Stratified, disjoint train / val split of digit indices.

    Args:
        labels (np.ndarray): (N,) class index of every digit.
        num_train (int): Number of train digits.
        num_val (int): Number of val digits; ``num_train + num_val <= N``.
        seed (int): Seed of the shuffle inside each class.

    Returns:
        dict[str, np.ndarray]: ``{'train': (num_train,), 'val': (num_val,)}``
        sorted digit indices; every class gets a share proportional to its
        frequency and no index appears in both splits.
    """
    if num_train < 0 or num_val < 0:
        raise ValueError('num_train and num_val must be >= 0, got '
                         f'num_train={num_train}, num_val={num_val}')
    if num_train + num_val > len(labels):
        raise ValueError(f'num_train + num_val = {num_train + num_val} '
                         f'exceeds the {len(labels)} available digits')
    class_counts = np.bincount(labels, minlength=len(CLASS_NAMES))
    train_quotas = _proportional_quotas(class_counts, num_train)
    val_quotas = _proportional_quotas(class_counts, num_val)
    rng = np.random.default_rng(seed)
    split = {'train': [], 'val': []}
    for c in range(len(class_counts)):
        members = rng.permutation(np.flatnonzero(labels == c))
        if train_quotas[c] + val_quotas[c] > len(members):
            raise ValueError(f'class {c} has {len(members)} digits, fewer '
                             f'than its train + val quota '
                             f'{train_quotas[c]} + {val_quotas[c]}')
        split['train'].append(members[:train_quotas[c]])
        split['val'].append(
            members[train_quotas[c]:train_quotas[c] + val_quotas[c]])
    return {
        name: np.sort(np.concatenate(parts))
        for name, parts in split.items()
    }
