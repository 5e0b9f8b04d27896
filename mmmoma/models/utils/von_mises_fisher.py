"""Directions on the unit sphere: the spherical mean of keys (M-MoCo Eq. 4)
and the von Mises–Fisher concentration κ of a set of representations (the
M-MoCo paper's training monitor, §4.2 / Fig. 6)."""
import torch.nn.functional as F
from torch import Tensor


def spherical_mean(vectors: Tensor, dim: int = -2,
                   eps: float = 1e-12) -> Tensor:
    """k̂ = Σᵢ kᵢ / ‖Σᵢ kᵢ‖₂ over the unit-normalised vectors kᵢ (Eq. 4).

    Args:
        vectors (Tensor): (..., m, ..., D), features last; each vector is
            L2-normalised first, as MoCo's keys are.
        dim (int): the dimension of the m vectors (not the last). Defaults
            to -2.
        eps (float): guard against a zero sum.

    Returns:
        Tensor: the unit mean direction, ``dim`` removed.
    """
    if dim % vectors.dim() == vectors.dim() - 1:
        raise ValueError('spherical_mean: dim must index the vectors, not '
                         'the feature dimension (the last one)')
    summed = F.normalize(vectors, dim=-1, eps=eps).sum(dim=dim)
    return F.normalize(summed, dim=-1, eps=eps)


def vmf_concentration(samples: Tensor, eps: float = 1e-6) -> Tensor:
    """Banerjee et al. (2005)'s estimate of the vMF concentration κ.

    The n samples are L2-normalised; with R̄ = ‖mean of the unit vectors‖
    (mean resultant length) in d dimensions::

        κ ≈ R̄ (d − R̄²) / (1 − R̄²)

    Large κ: the samples point the same way; κ → 0: spread uniformly.

    Args:
        samples (Tensor): (..., n, d), n >= 2 vectors per set.
        eps (float): keeps 1 − R̄² away from 0 for identical samples.

    Returns:
        Tensor: (...) one κ per set, float32.
    """
    if samples.dim() < 2 or samples.shape[-2] < 2:
        raise ValueError('vmf_concentration needs (..., n, d) with n >= 2 '
                         f'samples per set, got shape {tuple(samples.shape)}')
    dims = samples.shape[-1]
    unit = F.normalize(samples.float(), dim=-1)
    resultant = unit.mean(dim=-2).norm(dim=-1).clamp(max=1.0)
    return resultant * (dims - resultant**2) / (
        1.0 - resultant**2).clamp(min=eps)


__all__ = ['spherical_mean', 'vmf_concentration']
