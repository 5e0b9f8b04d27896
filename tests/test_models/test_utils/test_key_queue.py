import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from mmmoma.models.utils import KeyQueue


def test_starts_with_unit_keys_and_wraps_around():
    torch.manual_seed(0)
    queue = KeyQueue(length=6, dims=3)
    assert torch.allclose(queue.keys.norm(dim=1), torch.ones(6))
    first = torch.arange(6.0).reshape(2, 3)
    queue.enqueue(first)
    assert int(queue.ptr) == 2
    assert torch.equal(queue.keys[:2], first)
    queue.enqueue(first + 10)
    queue.enqueue(first + 20)
    assert int(queue.ptr) == 0  # wrapped
    queue.enqueue(first + 30)  # overwrites the oldest block
    assert torch.equal(queue.keys[:2], first + 30)
    assert torch.equal(queue.keys[2:4], first + 10)
    assert torch.equal(queue.keys[4:6], first + 20)
    assert int(queue.ptr) == 2


def test_state_is_saved_and_restored_exactly():
    queue = KeyQueue(length=8, dims=4)
    for step in range(3):
        queue.enqueue(torch.randn(4, 4))
    state = queue.state_dict()
    assert set(state) == {'keys', 'ptr'}
    restored = KeyQueue(length=8, dims=4)
    restored.load_state_dict(state)
    assert torch.equal(restored.keys, queue.keys)
    assert int(restored.ptr) == int(queue.ptr) == 4
    new = torch.randn(4, 4)
    queue.enqueue(new)
    restored.enqueue(new)
    assert torch.equal(restored.keys, queue.keys)


def test_queue_length_must_be_divisible_by_the_global_batch():
    queue = KeyQueue(length=10, dims=2, name='MimCo.queue_length')
    with pytest.raises(ValueError, match=r'MimCo.queue_length=10 .* \(4'):
        queue.enqueue(torch.randn(4, 2))
    with pytest.raises(ValueError, match='positive int'):
        KeyQueue(length=0, dims=2)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def _worker(rank: int, world_size: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    dist.init_process_group('gloo', rank=rank, world_size=world_size)
    try:
        torch.manual_seed(0)  # same initial queue on both ranks
        queue = KeyQueue(length=8, dims=2)
        keys = torch.full((2, 2), float(rank + 1))  # rank-specific keys
        queue.enqueue(keys)
        torch.save({'keys': queue.keys, 'ptr': queue.ptr},
                   f'{out}/rank{rank}.pth')
        with_error = None
        try:  # 2 ranks x 3 keys = 6 does not divide 8
            queue.enqueue(torch.zeros(3, 2))
        except ValueError as error:
            with_error = str(error)
        torch.save(with_error, f'{out}/error{rank}.pth')
    finally:
        dist.destroy_process_group()


def test_two_gloo_processes_enqueue_each_others_keys(tmp_path):
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2)
    states = [torch.load(tmp_path / f'rank{r}.pth') for r in (0, 1)]
    for state in states:
        # both ranks' keys, in rank order, at the start of the queue
        assert torch.equal(state['keys'][:2], torch.full((2, 2), 1.0))
        assert torch.equal(state['keys'][2:4], torch.full((2, 2), 2.0))
        assert int(state['ptr']) == 4
    assert torch.equal(states[0]['keys'], states[1]['keys'])
    for rank in (0, 1):
        message = torch.load(tmp_path / f'error{rank}.pth')
        assert message is not None and '(6' in message


def test_enqueue_never_reads_the_pointer_back_to_the_host():
    """The write position is computed on the device (a GPU step does not
    wait for it); the queue still advances block by block and wraps."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class HostReads(TorchDispatchMode):
        reads = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func.overloadpacket.__name__ == '_local_scalar_dense':
                HostReads.reads += 1
            return func(*args, **(kwargs or {}))

    queue = KeyQueue(6, 2)
    blocks = [torch.full((2, 2), float(i)) for i in range(4)]
    with HostReads():
        for block in blocks:
            queue.enqueue(block)
    assert HostReads.reads == 0
    # blocks 0, 1, 2 filled the queue, block 3 replaced block 0
    assert torch.equal(queue.keys, torch.cat([blocks[3], blocks[1],
                                              blocks[2]]))
    assert int(queue.ptr) == 2
