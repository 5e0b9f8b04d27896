"""The paper configs' GPU speed defaults, and MMEngine's ``compile=`` option
through the Runner (every method's demo config: compiled training logs the
eager losses and never recompiles across steps)."""
import glob
import os.path as osp
import re
from typing import List

import pytest
import torch
import torch._dynamo
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from mmmoma.utils.stand_in_checkpoints import write_stand_in_checkpoints

from ..test_tools.utils import MIMCO_DEMO, MMOCO_DEMO, REPO_ROOT, SDAE_DEMO
from .pretrain_stand_in import data_options, shrunk_config

PAPER_CONFIGS = sorted(
    path for method in ('moma', 'sdae', 'mimco', 'mmoco')
    for path in glob.glob(osp.join(REPO_ROOT, 'configs', method, '*.py')))
MOMA_DEMO = osp.join(REPO_ROOT, 'configs', 'demo',
                     'moma-mae-to-mocov3_vit-tiny-p4_1xb128-24e_'
                     'digit-scenes.py')


def frozen_teacher_dicts(model: dict) -> list:
    if 'teachers' in model:
        return [spec.teacher for spec in model.teachers.values()]
    return [model.teacher] if 'network' in model.get('teacher', {}) else []


@pytest.mark.parametrize('config', PAPER_CONFIGS,
                         ids=[osp.basename(p) for p in PAPER_CONFIGS])
def test_paper_configs_default_to_bf16_fused_and_bf16_teachers(config):
    cfg = Config.fromfile(config)
    assert '-amp-' in osp.basename(config)
    assert (cfg.optim_wrapper.type, cfg.optim_wrapper.dtype) == (
        'AutoAmpOptimWrapper', 'bfloat16')
    assert cfg.optim_wrapper.optimizer.type == 'AdamW'
    assert cfg.optim_wrapper.optimizer.fused is True
    teachers = frozen_teacher_dicts(cfg.model)
    assert bool(teachers) == (cfg.model.type in ('MOMA', 'MimCo'))
    assert all(teacher.dtype == 'bfloat16' for teacher in teachers)
    assert not cfg.get('compile')  # opt-in: compile time, see the README


@HOOKS.register_module(force=True)
class GraphCountHook(Hook):
    """Records how many graphs Dynamo has compiled after every iteration."""
    counts: List[int] = []

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        GraphCountHook.counts.append(
            torch._dynamo.utils.counters['stats']['unique_graphs'])


def logged_losses(log: str) -> list:
    return re.findall(r'\bloss: ([-\d.]+)', log)


@pytest.mark.parametrize('demo, crop', [
    (MOMA_DEMO, 'RandomResizedCrop'),
    (SDAE_DEMO, 'RandomResizedCrop'),
    (MIMCO_DEMO, 'RandomResizedCrop'),
    (MMOCO_DEMO, 'ContrastiveViews'),
], ids=['moma', 'sdae', 'mimco', 'mmoco'])
def test_compiled_training_logs_the_eager_losses_without_recompiles(
        demo, crop, tiny_image_folder, imagenet_stand_in, train_in_process,
        tmp_path):
    cfg = shrunk_config(demo, crop)
    cfg.model, _ = write_stand_in_checkpoints(cfg.model, str(tmp_path))
    options = data_options(cfg, tiny_image_folder, imagenet_stand_in,
                           ['randomness.seed=0'])
    options.append('train_cfg.max_epochs=2')  # 4 steps
    eager = train_in_process(cfg, options)
    cfg.custom_hooks = cfg.get('custom_hooks', []) + [
        dict(type='GraphCountHook')]
    GraphCountHook.counts = []
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    try:
        # aot_eager: Dynamo + AOTAutograd (the graphs inductor would get)
        # without C++ compilation
        compiled = train_in_process(cfg,
                                    options + ['compile.backend=aot_eager'])
    finally:
        torch._dynamo.reset()
    assert 'Model has been "compiled"' in compiled.log
    counts = GraphCountHook.counts
    # graphs are compiled in the first step only: no recompile afterwards
    assert len(counts) == 4 and counts[0] > 0 and counts[-1] == counts[0]
    assert len(logged_losses(eager.log)) == 4
    assert logged_losses(compiled.log) == logged_losses(eager.log)
