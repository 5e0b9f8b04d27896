"""InfoNCE against a queue of negative keys (MoCo / MoBY, MimCo Eq. 1, 3)."""
import torch
import torch.nn.functional as F
from torch import Tensor


def queue_info_nce(query: Tensor, positive: Tensor, negatives: Tensor,
                   temperature: float) -> Tensor:
    """Mean of ``−log softmax`` of the positive among the queue's keys.

    For each query q with its positive key k₊ and the queue keys k₁…k_K::

        ℓ = −log exp(q·k₊/τ) / (exp(q·k₊/τ) + Σ_j exp(q·k_j/τ))

    All vectors are L2-normalised here, so the dot products are cosines.

    Args:
        query (Tensor): (N, D) queries.
        positive (Tensor): (N, D) the positive key of each query.
        negatives (Tensor): (K, D) negative keys (the queue).
        temperature (float): τ > 0.

    Returns:
        Tensor: scalar, the mean over the N queries.
    """
    if not temperature > 0:
        raise ValueError(f'temperature must be > 0, got {temperature}')
    query = F.normalize(query, dim=1)
    positive = F.normalize(positive.to(query.dtype), dim=1)
    negatives = F.normalize(negatives.to(query.dtype), dim=1)
    positive_logits = (query * positive).sum(1, keepdim=True)  # (N, 1)
    negative_logits = query @ negatives.t()  # (N, K)
    logits = torch.cat([positive_logits, negative_logits], 1) / temperature
    labels = logits.new_zeros(logits.shape[0], dtype=torch.long)
    return F.cross_entropy(logits, labels)
