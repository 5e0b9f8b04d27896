"""The ADE20K configs (configs/benchmarks/mmseg) hold each paper's recipe.
(That every one of them trains and validates: test_benchmark_configs.py.)"""
import glob
import os

import pytest
from mmengine.config import Config

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
MMSEG_CONFIGS = sorted(
    glob.glob(os.path.join(REPO_ROOT, 'configs', 'benchmarks', 'mmseg',
                           '*.py')))
VIT_CHANNELS = {'vit-small': 384, 'vit-base': 768, 'vit-large': 1024}


def config_id(path):
    return os.path.basename(path)[:-3]


def test_one_config_per_paper_row():
    names = {config_id(path) for path in MMSEG_CONFIGS}
    for row in ('moma-mae-large-to-mocov3_upernet_vit-base-p16',
                'sdae_upernet_vit-base-p16', 'mimco_upernet_vit-base-p16',
                'mimco_upernet_swin-tiny', 'mmoco_upernet_vit-base-p16'):
        assert any(name.startswith(row) for name in names), row


@pytest.mark.parametrize('path', MMSEG_CONFIGS, ids=config_id)
def test_ade20k_protocol(path):
    cfg = Config.fromfile(path)
    name = config_id(path)
    assert cfg.default_scope == 'mmseg'
    assert 'mmmoma' in cfg.custom_imports.imports
    # ADE20K 512 x 512, 150 classes, batch 16 = 8 x 2, mIoU
    assert cfg.train_dataloader.dataset.type == 'ADE20KDataset'
    assert cfg.train_dataloader.batch_size * 8 == 16
    assert cfg.model.data_preprocessor.size == (512, 512)
    assert cfg.model.decode_head.num_classes == 150
    assert cfg.model.auxiliary_head.num_classes == 150
    assert cfg.model.decode_head.type == 'UPerHead'
    assert cfg.model.auxiliary_head.type == 'FCNHead'
    assert cfg.val_evaluator.iou_metrics == ['mIoU']
    max_iters = 80000 if name.startswith('mmoco') else 160000
    assert cfg.train_cfg.max_iters == max_iters
    assert cfg.param_scheduler[-1]['end'] == max_iters
    assert cfg.param_scheduler[0]['end'] == 1500  # warm-up
    init = cfg.model.backbone.init_cfg
    assert init.type == 'StrictPretrained'
    assert init.checkpoint.endswith('mmseg_backbone_512px.pth')
    optimizer = cfg.optim_wrapper.optimizer
    if 'swin' in name:  # MoBY / Swin protocol
        assert cfg.model.backbone.type == 'mmpretrain.SwinTransformer'
        assert (optimizer.lr, optimizer.weight_decay) == (6e-5, 0.01)
        assert cfg.model.backbone.window_size == 7
        return
    # MAE / BEiT protocol
    width = next(channels for arch, channels in VIT_CHANNELS.items()
                 if arch in name)
    backbone = cfg.model.backbone
    assert backbone.type == 'mmpretrain.MaskedViT'
    assert (backbone.img_size, backbone.patch_size) == (512, 16)
    assert backbone.out_type == 'featmap'
    assert backbone.drop_path_rate == 0.1
    assert cfg.model.neck.type == 'Feature2Pyramid'
    assert cfg.model.neck.embed_dim == width
    assert cfg.model.neck.rescales == [4, 2, 1, 0.5]
    assert cfg.model.decode_head.in_channels == [width] * 4
    assert (optimizer.type, optimizer.lr, optimizer.weight_decay) == (
        'AdamW', 1e-4, 0.05)
    assert cfg.optim_wrapper.constructor == \
        'mmpretrain.BackboneLayerDecayOptimWrapperConstructor'
    assert cfg.optim_wrapper.paramwise_cfg.layer_decay_rate == 0.65
    assert cfg.model.test_cfg == dict(
        mode='slide', crop_size=(512, 512), stride=(341, 341))
