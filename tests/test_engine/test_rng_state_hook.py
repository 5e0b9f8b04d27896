import random
from types import SimpleNamespace

import numpy as np
import torch

from mmmoma.engine.hooks import RNGStateHook


def draws():
    return (random.random(), np.random.rand(), torch.rand(1).item())


def fake_runner(resume):
    warnings = []
    logger = SimpleNamespace(warning=warnings.append)
    return SimpleNamespace(_resume=resume, hooks=[], logger=logger), warnings


def test_saves_and_restores_rng_streams_on_resume():
    hook = RNGStateHook()
    runner, _ = fake_runner(resume=True)
    checkpoint = {}
    torch.manual_seed(1)
    hook.before_save_checkpoint(runner, checkpoint)
    expected = draws()
    assert len(checkpoint['rng_state']) == 1
    draws()  # the stream moves on
    hook.after_load_checkpoint(runner, checkpoint)
    assert draws() == expected


def test_loading_weights_without_resume_keeps_this_runs_streams():
    hook = RNGStateHook()
    runner, _ = fake_runner(resume=False)
    checkpoint = {}
    hook.before_save_checkpoint(runner, checkpoint)
    saved_next = draws()
    torch.manual_seed(7)
    random.seed(7)
    np.random.seed(7)
    hook.after_load_checkpoint(runner, checkpoint)
    assert draws() != saved_next


def test_missing_state_or_other_world_size_warns():
    hook = RNGStateHook()
    runner, warnings = fake_runner(resume=True)
    hook.after_load_checkpoint(runner, {})
    assert 'no rng_state' in warnings[-1]
    hook.after_load_checkpoint(runner, {'rng_state': [{}, {}]})
    assert 'ranks' in warnings[-1]
