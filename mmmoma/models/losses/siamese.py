"""Siamese losses with several queries per key: M-MoCo / M-BYOL Eq. 1–3.

Each image b contributes n queries q_{b,1..n} (one per chunk of the online
view) and one key k_b (the target view). Averaging the per-query losses over
all B·n queries is Eq. 3's ``(1/n) Σᵢ L(qᵢ, k)`` averaged over the batch,
because every image has the same n.
"""
import torch
import torch.nn.functional as F
from mmengine.dist import all_gather, get_rank
from torch import Tensor


def _check_pairs(queries: Tensor, keys: Tensor) -> None:
    if queries.dim() != 3 or keys.dim() != 2 or \
            queries.shape[0] != keys.shape[0] or \
            queries.shape[2] != keys.shape[1]:
        raise ValueError(
            'queries must be (B, n, D) and keys (B, D) with the same B and '
            f'D, got {tuple(queries.shape)} and {tuple(keys.shape)}')


def contrastive_labels(batch_size: int, num_queries: int,
                       device: torch.device) -> Tensor:
    """Index of each query's own key among the keys of all processes.

    Keys are gathered rank-major, so image b of this rank is key
    ``b + B · rank``; its n queries (rows ``b·n … b·n + n − 1`` of the
    flattened queries) all point there.

    Args:
        batch_size (int): B, images per process.
        num_queries (int): n, queries per image.
        device (torch.device): device of the labels.

    Returns:
        Tensor: (B · n,) int64 labels.
    """
    labels = torch.arange(batch_size, device=device) + batch_size * get_rank()
    return labels.repeat_interleave(num_queries)


def multi_query_info_nce(queries: Tensor, keys: Tensor,
                         temperature: float) -> Tensor:
    """MoCo v3's contrastive loss (Eq. 1) with n queries per key.

    q and k are L2-normalised; the keys of all processes are the candidates
    (the batch's other images are the negatives k⁻); each query's positive
    is its own image's key::

        L(q, k) = −log exp(q·k/τ) / Σ_{k'} exp(q·k'/τ)

    averaged over the B · n queries (Eq. 3). MoCo v3 multiplies this by 2τ;
    that factor is the caller's (``MaskedMoCoV3``).

    Args:
        queries (Tensor): (B, n, D) predictor outputs of the online chunks.
        keys (Tensor): (B, D) target keys (no gradient flows into them).
        temperature (float): τ > 0.

    Returns:
        Tensor: scalar loss.
    """
    _check_pairs(queries, keys)
    if not temperature > 0:
        raise ValueError(f'temperature must be > 0, got {temperature}')
    batch_size, num_queries = queries.shape[:2]
    queries = F.normalize(queries.flatten(0, 1), dim=1)
    keys = F.normalize(keys.detach().to(queries.dtype), dim=1)
    all_keys = torch.cat(all_gather(keys), dim=0)  # (B · world, D)
    logits = queries @ all_keys.t() / temperature  # (B · n, B · world)
    labels = contrastive_labels(batch_size, num_queries, logits.device)
    return F.cross_entropy(logits, labels)


def multi_query_byol_loss(queries: Tensor, keys: Tensor) -> Tensor:
    """BYOL's loss (Eq. 2) with n queries per key.

    ``‖q − k‖² = 2 − 2 q·k`` for unit vectors, averaged over the B · n
    queries (Eq. 3).

    Args:
        queries (Tensor): (B, n, D) predictor outputs of the online chunks.
        keys (Tensor): (B, D) target projections (no gradient).

    Returns:
        Tensor: scalar loss.
    """
    _check_pairs(queries, keys)
    queries = F.normalize(queries, dim=-1)
    keys = F.normalize(keys.detach().to(queries.dtype), dim=-1)
    cosine = (queries * keys.unsqueeze(1)).sum(-1)  # (B, n)
    return (2 - 2 * cosine).mean()
