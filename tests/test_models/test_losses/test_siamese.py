"""Siamese losses with n queries per key (M-MoCo / M-BYOL Eq. 1–3): by
hand, label layout, and across two gloo processes."""
import math
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import Tensor

from mmmoma.models.losses import (contrastive_labels, multi_query_byol_loss,
                                  multi_query_info_nce)

TAU = 0.2


def random_pairs(batch: int = 3, num_queries: int = 4, dims: int = 8,
                 seed: int = 0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    queries = torch.randn(batch, num_queries, dims, generator=g, dtype=dtype)
    keys = torch.randn(batch, dims, generator=g, dtype=dtype)
    return queries, keys


def info_nce_by_hand(queries: Tensor, all_keys: Tensor, tau: float,
                     rank: int = 0) -> float:
    """Mean over images b and chunks i of −log softmax(q̂_{b,i}·K̂/τ)[own],
    own = b + B·rank, with the softmax written out (float64)."""
    batch, num_queries, _ = queries.shape
    keys = [k / k.norm() for k in all_keys.double()]
    terms = []
    for b in range(batch):
        for i in range(num_queries):
            q = queries[b, i].double()
            q = q / q.norm()
            logits = [float(q @ k) / tau for k in keys]
            own = logits[b + batch * rank]
            terms.append(-own + math.log(sum(math.exp(x) for x in logits)))
    return sum(terms) / len(terms)


def byol_by_hand(queries: Tensor, keys: Tensor) -> float:
    terms = []
    for b in range(queries.shape[0]):
        k = keys[b].double()
        for i in range(queries.shape[1]):
            q = queries[b, i].double()
            cos = float(q @ k) / (float(q.norm()) * float(k.norm()))
            terms.append(2 - 2 * cos)
    return sum(terms) / len(terms)


# ----------------------------------------------------------------------
# one process
# ----------------------------------------------------------------------
def test_labels_point_every_chunk_to_its_own_image():
    labels = contrastive_labels(3, 4, torch.device('cpu'))
    assert labels.dtype == torch.long
    assert labels.tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2]


@pytest.mark.parametrize('num_queries', [1, 4])
def test_info_nce_equals_the_loop_over_images_and_chunks(num_queries):
    queries, keys = random_pairs(num_queries=num_queries)
    loss = multi_query_info_nce(queries, keys, TAU)
    assert loss.item() == pytest.approx(
        info_nce_by_hand(queries, keys, TAU), rel=1e-10)


def test_one_query_per_key_is_mocov3_cross_entropy():
    queries, keys = random_pairs(num_queries=1)
    q = F.normalize(queries[:, 0], dim=1)
    k = F.normalize(keys, dim=1)
    expected = F.cross_entropy(q @ k.t() / TAU, torch.arange(3))
    torch.testing.assert_close(
        multi_query_info_nce(queries, keys, TAU), expected)


def test_own_key_gives_near_zero_loss_and_permuted_keys_a_large_one():
    batch, num_queries, tau = 4, 3, 0.05
    keys = torch.eye(batch, 6) * torch.tensor([[1.0], [2.0], [0.5], [3.0]])
    scales = torch.rand(batch, num_queries, 1) + 0.5  # any positive length
    queries = keys.unsqueeze(1) * scales  # every chunk = its image's key
    assert multi_query_info_nce(queries, keys, tau).item() < 1e-6
    # keys in another order: each query's positive is orthogonal to it
    shifted = keys.roll(1, dims=0)
    assert multi_query_info_nce(queries, shifted, tau).item() > 10.0


def test_no_gradient_flows_into_the_keys():
    queries, keys = random_pairs()
    queries.requires_grad_(True)
    keys.requires_grad_(True)
    (multi_query_info_nce(queries, keys, TAU) +
     multi_query_byol_loss(queries, keys)).backward()
    assert keys.grad is None
    assert queries.grad is not None and queries.grad.abs().sum() > 0


@pytest.mark.parametrize('num_queries', [1, 5])
def test_byol_loss_is_the_mean_of_2_minus_2_cos(num_queries):
    queries, keys = random_pairs(num_queries=num_queries, seed=1)
    loss = multi_query_byol_loss(queries, keys)
    assert loss.item() == pytest.approx(byol_by_hand(queries, keys),
                                        rel=1e-10)
    # = ‖q̂ − k̂‖² for unit vectors, and invariant to their lengths
    q = F.normalize(queries, dim=-1)
    k = F.normalize(keys, dim=-1).unsqueeze(1)
    assert loss.item() == pytest.approx(
        ((q - k)**2).sum(-1).mean().item(), rel=1e-10)
    assert multi_query_byol_loss(3 * queries, 0.1 * keys).item() == \
        pytest.approx(loss.item(), rel=1e-10)
    # aligned chunks: 0; opposite: 4
    aligned = keys.unsqueeze(1).expand_as(queries) * 2
    assert multi_query_byol_loss(aligned, keys).item() == pytest.approx(
        0.0, abs=1e-12)
    assert multi_query_byol_loss(-aligned, keys).item() == pytest.approx(
        4.0, rel=1e-12)


@pytest.mark.parametrize('shapes', [((3, 8), (3, 8)), ((3, 2, 8), (4, 8)),
                                    ((3, 2, 8), (3, 7)),
                                    ((3, 2, 8), (3, 1, 8))])
def test_shape_mismatch_raises(shapes):
    queries, keys = torch.randn(*shapes[0]), torch.randn(*shapes[1])
    with pytest.raises(ValueError, match=r'queries must be \(B, n, D\)'):
        multi_query_info_nce(queries, keys, TAU)
    with pytest.raises(ValueError, match=r'queries must be \(B, n, D\)'):
        multi_query_byol_loss(queries, keys)


@pytest.mark.parametrize('tau', [0.0, -1.0])
def test_temperature_must_be_positive(tau):
    queries, keys = random_pairs()
    with pytest.raises(ValueError, match='temperature'):
        multi_query_info_nce(queries, keys, tau)


# ----------------------------------------------------------------------
# two processes: keys of all ranks are the candidates
# ----------------------------------------------------------------------
BATCH, NUM_QUERIES, IN_DIMS, DIMS, WORLD = 3, 4, 5, 6, 2


def gathered_data():
    """The data of both ranks: inputs (W·B, n, IN), keys (W·B, D), and the
    shared linear map W (IN, D) that makes the queries."""
    g = torch.Generator().manual_seed(7)
    inputs = torch.randn(WORLD * BATCH, NUM_QUERIES, IN_DIMS, generator=g,
                         dtype=torch.float64)
    keys = torch.randn(WORLD * BATCH, DIMS, generator=g, dtype=torch.float64)
    weight = torch.randn(IN_DIMS, DIMS, generator=g, dtype=torch.float64)
    return inputs, keys, weight


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def _worker(rank: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    dist.init_process_group('gloo', rank=rank, world_size=WORLD)
    try:
        inputs, keys, weight = gathered_data()
        rows = slice(rank * BATCH, (rank + 1) * BATCH)
        weight.requires_grad_(True)
        queries = inputs[rows] @ weight
        queries.retain_grad()
        loss = multi_query_info_nce(queries, keys[rows], TAU)
        loss.backward()
        weight_grad = weight.grad.clone()
        dist.all_reduce(weight_grad)  # DDP: average over ranks
        torch.save(
            dict(
                labels=contrastive_labels(BATCH, NUM_QUERIES,
                                          torch.device('cpu')),
                loss=loss.detach(),
                queries=queries.detach(),
                query_grad=queries.grad,
                weight_grad=weight_grad / WORLD), f'{out}/rank{rank}.pth')
    finally:
        dist.destroy_process_group()


def test_two_gloo_processes_use_all_keys_with_rank_offset_labels(tmp_path):
    mp.spawn(_worker, args=(_free_port(), str(tmp_path)), nprocs=WORLD)
    results = [torch.load(tmp_path / f'rank{r}.pth') for r in range(WORLD)]
    inputs, keys, weight = gathered_data()

    # labels: b + B·rank, each repeated for the n chunks of image b
    for rank, result in enumerate(results):
        expected = (torch.arange(BATCH) + BATCH * rank).repeat_interleave(
            NUM_QUERIES)
        assert torch.equal(result['labels'], expected)
    assert results[1]['labels'].tolist()[:NUM_QUERIES + 1] == [3, 3, 3, 3, 4]

    # each rank's loss: its queries against the keys of both ranks
    for rank, result in enumerate(results):
        assert result['loss'].item() == pytest.approx(
            info_nce_by_hand(result['queries'], keys, TAU, rank=rank),
            rel=1e-10)
        # not the loss against this rank's keys only
        rows = slice(rank * BATCH, (rank + 1) * BATCH)
        assert result['loss'].item() != pytest.approx(
            info_nce_by_hand(result['queries'], keys[rows], TAU), rel=1e-3)

    # gradients equal one process computing the loss on the gathered data
    weight.requires_grad_(True)
    queries = inputs @ weight
    queries.retain_grad()
    single = multi_query_info_nce(queries, keys, TAU)
    single.backward()
    mean_loss = sum(r['loss'] for r in results) / WORLD
    torch.testing.assert_close(mean_loss, single.detach())
    for rank, result in enumerate(results):
        rows = slice(rank * BATCH, (rank + 1) * BATCH)
        # the rank's loss averages B·n queries, the single one W·B·n
        torch.testing.assert_close(result['query_grad'] / WORLD,
                                   queries.grad[rows])
        torch.testing.assert_close(result['weight_grad'], weight.grad)
