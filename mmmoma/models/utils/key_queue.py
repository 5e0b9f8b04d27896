"""A FIFO queue of contrastive keys shared by all processes (MoCo / MoBY)."""
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
        self.check_batch(keys.shape[0])
        start = int(self.ptr)
        self.keys[start:start + keys.shape[0]] = keys.to(self.keys.dtype)
        self.ptr.fill_((start + keys.shape[0]) % self.length)
