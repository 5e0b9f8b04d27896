import os

import pytest

from .in_process import TrainRun
from .in_process import train_in_process as _train


@pytest.fixture
def train_in_process(request, tmp_path):
    """``train(cfg, cfg_options=None) -> TrainRun``: train ``cfg`` as
    tools/train.py does, in this process and isolated from other runs
    (:mod:`.in_process`), with ``tmp_path/work`` as its work directory."""

    def train(cfg, cfg_options=None) -> TrainRun:
        return _train(cfg, os.path.join(str(tmp_path), 'work'), cfg_options,
                      name=request.node.name)

    return train
