"""Tiny demo-config models for the algorithm-level tests (the masking
protocol, the contract every algorithm keeps)."""
import os.path as osp
from typing import List

import torch
from mmengine.config import Config
from mmpretrain.registry import MODELS

from mmmoma.models.utils.frozen_teacher import teachers_without_weights

from ..test_tools.utils import REPO_ROOT

DEMO = osp.join(REPO_ROOT, 'configs', 'demo')
MIX = osp.join(REPO_ROOT, 'configs', 'mix')
BATCH = 2

#: demo config -> the scalar settings of its default masking (left out
#: when a mask_generator is given), the views its loss takes
METHODS = {
    'moma': ('moma-mae-to-mocov3_vit-tiny-p4_1xb128-24e_digit-scenes.py',
             ('mask_ratio', ), 1),
    'sdae': ('sdae_vit-tiny-p4_1xb128-100e_digit-scenes.py',
             ('mask_ratio', 'teacher_input', 'num_folds', 'crop_ratio'), 1),
    'mimco': ('mimco_vit-tiny-p4_1xb128-20e_digit-scenes.py',
              ('mask_ratio', 'mask_patch_size'), 1),
    'mmoco': ('mmoco_vit-tiny-p4_1xb128-12e_digit-scenes.py',
              ('num_chunks', ), 2),
}


def build(config: str, seed: int = 0,
          **model_options) -> torch.nn.Module:
    """A config's model (tiny ViT, 32 px, patch 4), teachers and student
    init left random."""
    cfg = Config.fromfile(config)
    cfg.model.update(model_options)
    if isinstance(cfg.model.backbone.get('init_cfg'), dict):
        cfg.model.backbone.init_cfg = None
    torch.manual_seed(seed)
    with teachers_without_weights():
        model = MODELS.build(cfg.model)
    model.init_weights()
    return model


def images(num_views: int, seed: int = 0) -> List[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(BATCH, 3, 32, 32, generator=generator)
            for _ in range(num_views)]


def uint8_views(num_views: int) -> List[torch.Tensor]:
    return [torch.randint(0, 256, (BATCH, 3, 32, 32), dtype=torch.uint8,
                          generator=torch.Generator().manual_seed(view))
            for view in range(num_views)]


def total_loss(losses: dict) -> torch.Tensor:
    return sum(value for key, value in losses.items() if 'loss' in key)
