"""Capture and restore the random-number-generator states of a process."""
import contextlib
import random
from typing import Any, Dict, Iterator

import numpy as np
import torch


def get_rng_state() -> Dict[str, Any]:
    """The python, numpy and torch (CPU, CUDA) RNG states of this process."""
    state = dict(
        python=random.getstate(),
        numpy=np.random.get_state(),
        torch=torch.get_rng_state())
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Dict[str, Any]) -> None:
    """Restore states captured by :func:`get_rng_state`."""
    random.setstate(state['python'])
    np.random.set_state(state['numpy'])
    torch.set_rng_state(state['torch'])
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])


@contextlib.contextmanager
def preserve_rng_state() -> Iterator[None]:
    """Restore python, numpy and torch (CPU, CUDA) RNG states on exit.

    Anything run inside (building a sampler, iterating a ``DataLoader``,
    dropout, random masking) then leaves the training random streams
    exactly as they were, which exact ``--resume`` relies on.
    """
    state = get_rng_state()
    try:
        yield
    finally:
        set_rng_state(state)
