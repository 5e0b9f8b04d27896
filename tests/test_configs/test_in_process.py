"""The in-process training helper leaves no global state behind: two runs
of one config in a row log the same losses, and what was current before is
current after."""
import os.path as osp
import re

import torch
from mmengine.logging import MessageHub
from mmengine.registry import DefaultScope

from mmmoma.utils.rng import get_rng_state

from ..test_tools.utils import SDAE_DEMO, manager_classes
from .pretrain_stand_in import data_options, shrunk_config


def named_instances() -> dict:
    """MMEngine's global instances, by class (classes first imported by a
    run have none)."""
    return {cls: dict(cls._instance_dict) for cls in manager_classes()
            if cls._instance_dict}


def test_runs_are_isolated_and_repeatable(tiny_image_folder,
                                          imagenet_stand_in,
                                          train_in_process):
    cfg = shrunk_config(SDAE_DEMO, 'RandomResizedCrop', head_channels=32)
    options = data_options(cfg, tiny_image_folder, imagenet_stand_in)
    scope = DefaultScope.get_current_instance()
    hub = MessageHub.get_current_instance()
    instances = named_instances()
    threads = torch.get_num_threads()
    rng = get_rng_state()['torch']

    losses = []
    for _ in range(2):
        run = train_in_process(cfg, options)
        assert osp.isfile(run.last_checkpoint)
        losses.append(re.findall(r'\bloss: ([\d.]+)', run.log))
        assert DefaultScope.get_current_instance() is scope
        assert scope.scope_name == 'mmpretrain'
        assert MessageHub.get_current_instance() is hub
        assert named_instances() == instances
        assert torch.get_num_threads() == threads
        assert torch.equal(get_rng_state()['torch'], rng)
    assert len(losses[0]) == 2 and losses[0] == losses[1]  # seeded
