"""A FIFO queue of contrastive keys shared by all processes (MoCo / MoBY)."""
from typing import Dict

import torch
import torch.nn.functional as F
from mmengine.dist import all_gather, get_world_size
from torch import Tensor, nn


class KeyQueue(nn.Module):
    """The last ``length`` keys of all processes, as negatives for InfoNCE.

    Keys are gathered from every process before they are enqueued, so every
    process holds the same queue. The queue and its write pointer are buffers:
    they are saved in checkpoints and a resumed run continues exactly. As in
    MoCo / MoBY, each enqueue writes one contiguous block, so the queue length
    must be divisible by the number of keys enqueued per step over all
    processes (checked with an error that names ``name``).

    Args:
        length (int): K, the number of keys kept.
        dims (int): D, the key dimension.
        name (str): config field named in error messages.
    """

    def __init__(self, length: int, dims: int,
                 name: str = 'queue_length') -> None:
        super().__init__()
        if isinstance(length, bool) or not isinstance(length, int) \
                or length < 1:
            raise ValueError(f'{name} must be a positive int, got {length!r}')
        self.length = length
        self.name = name
        # random unit keys until real ones arrive (MoCo's initialisation)
        self.register_buffer('keys',
                             F.normalize(torch.randn(length, dims), dim=1))
        self.register_buffer('ptr', torch.zeros((), dtype=torch.long))

    def check_batch(self, keys_per_step: int) -> None:
        """Raise unless ``keys_per_step`` keys (over all processes) tile the
        queue.

        The last resort, in the training step: the algorithms check the
        train loader before training (e.g. ``MimCo.check_train_loader``).

        Args:
            keys_per_step (int): keys enqueued this step by all processes.
        """
        if keys_per_step < 1 or self.length % keys_per_step:
            raise ValueError(
                f'{self.name}={self.length} must be divisible by the number '
                f'of keys enqueued this step over all processes '
                f'({keys_per_step}); allowed: a queue length that is a '
                'multiple of the keys enqueued per step, i.e. of the global '
                'batch (batch_size x world_size), with '
                'train_dataloader.drop_last=True (a partial last batch '
                'enqueues fewer keys)')

    @torch.no_grad()
    def enqueue(self, keys: Tensor) -> None:
        """Gather ``keys`` from all processes and replace the oldest keys.

        Args:
            keys (Tensor): (B, D) this process's keys (L2-normalised by the
                caller).
        """
        keys = keys.detach()
        if get_world_size() > 1:
            keys = torch.cat(all_gather(keys.contiguous()), dim=0)
        num_keys = keys.shape[0]
        self.check_batch(num_keys)
        # the slots ptr, ..., ptr + n - 1 (contiguous: n divides the length),
        # computed on the device: no read of ptr back to the host
        slots = self.ptr + torch.arange(num_keys, device=self.ptr.device)
        self.keys.index_copy_(0, slots, keys.to(self.keys.dtype))
        self.ptr.copy_((self.ptr + num_keys) % self.length)


def _valid_queue_settings(length: int, batch_size: int, world_size: int,
                          field: str) -> str:
    """The nearest valid queue lengths and batch sizes, for a message."""
    global_batch = batch_size * world_size
    lower = length // global_batch * global_batch
    lengths = [n for n in (lower, lower + global_batch) if n > 0]
    allowed = (f'{field} a multiple of {global_batch} (nearest: '
               f'{" or ".join(map(str, lengths))})')
    sizes = [b for b in range(1, length // world_size + 1)
             if length % (b * world_size) == 0]
    below = [b for b in sizes if b < batch_size]
    above = [b for b in sizes if b > batch_size]
    nearest = ([below[-1]] if below else []) + ([above[0]] if above else [])
    if nearest:
        allowed += (f', or train_dataloader.batch_size such that batch_size '
                    f'x {world_size} divides {length} (nearest: '
                    f'{" or ".join(map(str, nearest))})')
    return allowed


def check_queue_tiling(queues: Dict[str, KeyQueue], batch_size: int,
                       world_size: int, drop_last: bool,
                       dataset_size: int) -> None:
    """Check before training that every step tiles the key queues.

    Each step enqueues one key per image of the global batch
    (``batch_size x world_size``) into each queue as one block, so each
    queue length must be a multiple of the global batch, and every batch
    must be full: with ``drop_last=False`` the last batch of an epoch is
    partial unless each rank's share of the dataset (``ceil(dataset_size /
    world_size)``, mmengine's ``DefaultSampler`` pads) is a multiple of
    ``batch_size``. The training step checks again
    (:meth:`KeyQueue.check_batch`) as a last resort.

    Args:
        queues (dict[str, KeyQueue]): config field of each queue's length
            (e.g. ``'model.patch_queue_length'``) -> the queue.
        batch_size (int): ``train_dataloader.batch_size``, per process.
        world_size (int): number of training processes.
        drop_last (bool): ``train_dataloader.drop_last``.
        dataset_size (int): number of training samples.

    Raises:
        ValueError: a queue length is not a multiple of the global batch
            (naming the queue's field and ``train_dataloader.batch_size``,
            with the nearest valid values of both), or ``drop_last=False``
            leaves a partial last batch (naming
            ``train_dataloader.drop_last``).
    """
    for field, value, least in (
            ('train_dataloader.batch_size', batch_size, 1),
            ('world_size', world_size, 1),
            ('dataset_size', dataset_size, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or \
                value < least:
            raise ValueError(f'{field}={value!r} is not allowed; '
                             f'allowed: an int >= {least}')
    queues = list(queues.items())
    global_batch = batch_size * world_size
    for field, queue in queues:
        if queue.length % global_batch:
            allowed = _valid_queue_settings(queue.length, batch_size,
                                            world_size, field)
            raise ValueError(
                f'{field}={queue.length} is not a multiple of the global '
                f'batch: train_dataloader.batch_size={batch_size} x '
                f'world_size={world_size} = {global_batch} keys enqueued '
                f'per step; allowed: {allowed}')
    if not queues or drop_last:
        return
    per_rank = -(-dataset_size // world_size)  # DefaultSampler pads
    last = per_rank % batch_size
    if last:
        raise ValueError(
            f'train_dataloader.drop_last={drop_last!r} with '
            f'{dataset_size} samples on {world_size} process(es) '
            f'({per_rank} per process) and '
            f'train_dataloader.batch_size={batch_size} ends every epoch '
            f'with a partial batch of {last} per process '
            f'({last * world_size} keys instead of {global_batch}), '
            f'which breaks the tiling of '
            f'{" and ".join(field for field, _ in queues)}; '
            'allowed: train_dataloader.drop_last=True, or a dataset size '
            f'that is a multiple of the global batch {global_batch}')
