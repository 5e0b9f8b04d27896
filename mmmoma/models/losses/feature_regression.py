"""Feature-regression losses of the distillation methods.

* MOMA (Eq. 3): Smooth L1 between projected student and teacher tokens;
* SdAE (Eq. 3, 4): the teacher's per-token normalisation and the cosine
  distance, per token or per fold as the official code reduces it; and the
  within-image token cosine that shows SdAE's collapse.
"""
import math

import torch
import torch.nn.functional as F
from torch import Tensor


def smooth_l1_alignment(prediction: Tensor, target: Tensor,
                        beta: float) -> Tensor:
    """MOMA Eq. (3): Smooth L1 between projected student and teacher tokens.

    Args:
        prediction (Tensor): (B, L, C) projector outputs P ∘ S(x ⊙ M).
        target (Tensor): (B, L, C) normalised teacher features N ∘ T(x).
        beta (float): Smooth L1 threshold (torch's ``beta``).

    Returns:
        Tensor: scalar, mean over tokens and channels.
    """
    return F.smooth_l1_loss(prediction, target.to(prediction.dtype),
                            beta=beta)


def normalize_target(features: Tensor, eps: float = 1e-6) -> Tensor:
    """Eq. (3): per-token normalisation over the feature dimension.

    ``(f − mean(f)) / sqrt(var(f) + eps)`` with the biased variance and no
    affine parameters (a layer norm without weights). The official code uses
    the unbiased variance; the two differ by the constant factor
    ``sqrt(C / (C − 1))``, which the cosine loss does not see.

    Args:
        features (Tensor): (..., C) teacher features.
        eps (float): added to the variance.

    Returns:
        Tensor: (..., C) normalised features.
    """
    return F.layer_norm(features, features.shape[-1:], eps=eps)


def cosine_distance(prediction: Tensor, target: Tensor) -> Tensor:
    """Eq. (4) per token: ``1 − cos`` over the feature dim, mean over tokens.

    ``loss_reduction='token'`` (and the official full-image mode, whose
    tensors are 2-D (tokens, C), so ``dim=1`` is the feature dim there).

    Args:
        prediction (Tensor): (B, T, C) student decoder outputs.
        target (Tensor): (B, T, C) normalised teacher features.

    Returns:
        Tensor: scalar, the mean over the B * T tokens.
    """
    cosine = F.cosine_similarity(
        prediction, target.to(prediction.dtype), dim=-1)
    return (1.0 - cosine).mean()


def fold_cosine_distance(prediction: Tensor, target: Tensor,
                         num_folds: int) -> Tensor:
    """Eq. (4) as the official code computes it (``loss_reduction='fold'``).

    ``1 − F.cosine_similarity(target, prediction, dim=1)`` on (B·t, L_f, C)
    fold tensors: for each fold and each channel c, the cosine between the
    teacher's and the student's values of c over the L_f tokens of the fold;
    then the mean over the B·t folds and C channels. (Eq. 4's sums run over
    the masked tokens i; this is the objective behind Tables 2 and 5.)

    Args:
        prediction (Tensor): (B, t * L_f, C) student outputs, fold by fold.
        target (Tensor): (B, t * L_f, C) normalised teacher features, in the
            same order.
        num_folds (int): t.

    Returns:
        Tensor: scalar, the mean over the B * t * C fold channels.
    """
    batch_size, num_tokens, channels = prediction.shape
    if num_tokens % num_folds:
        raise ValueError(f'{num_tokens} target tokens do not split into '
                         f'{num_folds} folds')
    shape = (batch_size * num_folds, num_tokens // num_folds, channels)
    cosine = F.cosine_similarity(
        prediction.reshape(shape), target.to(prediction.dtype).reshape(shape),
        dim=1)  # (B * t, C)
    return (1.0 - cosine).mean()


def within_image_token_cosine(tokens: Tensor) -> Tensor:
    """Mean pairwise cosine similarity of the distinct tokens of an image.

    For every image b, the mean of ``cos(tokens[b, i], tokens[b, j])`` over
    the T * (T − 1) ordered pairs i != j (the diagonal is left out), then
    the mean over the B images. A diagnostic of SdAE's collapse: it rises
    towards 1 when the teacher maps every token of an image to one vector,
    and is −1 / (T − 1) for T equal-norm tokens that sum to zero. A zero
    token has cosine 0 with every other token (``F.normalize``).

    Args:
        tokens (Tensor): (B, T, C) token features, e.g. the teacher's
            targets; computed in float32 (or the input's dtype if wider).

    Returns:
        Tensor: scalar, the mean over the B images; NaN when T < 2 (no
        pairs).
    """
    if tokens.dim() != 3:
        raise ValueError(f'tokens must be (B, T, C), got shape '
                         f'{tuple(tokens.shape)}')
    num_tokens = tokens.shape[1]
    dtype = torch.promote_types(tokens.dtype, torch.float32)
    if num_tokens < 2:
        return torch.full((), math.nan, dtype=dtype, device=tokens.device)
    unit = F.normalize(tokens.to(dtype), dim=-1)
    # sum over i != j of <u_i, u_j> = |sum_i u_i|^2 - sum_i |u_i|^2, in
    # O(T C) element-wise work and no matmul (the Gram matrix would cost
    # T^2 C and show in the benchmark's per-step FLOPs)
    total = unit.sum(dim=1)  # (B, C)
    off_diagonal = total.pow(2).sum(-1) - unit.pow(2).sum(dim=(1, 2))  # (B,)
    return (off_diagonal / (num_tokens * (num_tokens - 1))).mean()
