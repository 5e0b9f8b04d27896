"""The ImageNet / CIFAR transfer configs (configs/benchmarks/mmpretrain)
hold each paper's recipe. (That every one of them trains and validates:
test_benchmark_configs.py.)"""
import glob
import os

import pytest
from mmengine.config import Config

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
CONFIG_DIR = os.path.join(REPO_ROOT, 'configs', 'benchmarks', 'mmpretrain')

# name -> (lr, layer decay, epochs, GPUs x batch, drop path, width)
FINETUNE = {
    'vit-base-p16_sdae-pre_8xb128-coslr-100e_in1k': (2e-3, 0.65, 100, 1024,
                                                     0.1, 768),
    'vit-base-p16_mmoco-pre_8xb128-coslr-100e_in1k': (2e-3, 0.65, 100, 1024,
                                                      0.1, 768),
    'vit-base-p16_moma-pre_8xb128-coslr-100e_in1k': (1.5e-3, 0.65, 100,
                                                     1024, 0.1, 768),
    'vit-base-p16_mimco-pre_8xb128-coslr-100e_in1k': (2e-3, 0.65, 100, 1024,
                                                      0.1, 768),
    'vit-small-p16_mimco-pre_8xb128-coslr-300e_in1k': (2e-3, 0.75, 300,
                                                       1024, 0.1, 384),
    'swin-tiny_mimco-pre_8xb128-coslr-100e_in1k': (2e-3, 0.75, 100, 1024,
                                                   0.1, 768),
    'swin-base_mimco-pre_8xb128-coslr-100e_in1k': (2e-3, 0.75, 100, 1024,
                                                   0.2, 1024),
    'vit-base-p16_moma-pre_8xb64-coslr-100e_cifar10': (7.5e-4, 0.65, 100,
                                                       512, 0.1, 768),
    'vit-base-p16_moma-pre_8xb64-coslr-100e_cifar100': (7.5e-4, 0.65, 100,
                                                        512, 0.1, 768),
}
# name -> (LARS lr, epochs, GPUs x batch)
LINEAR = {
    'vit-base-p16_sdae-pre_8xb2048-linear-coslr-90e_in1k': (6.4, 90, 16384),
    'vit-base-p16_mmoco-pre_8xb512-linear-coslr-100e_in1k': (16.0, 100,
                                                             4096),
}


def load(name):
    return Config.fromfile(os.path.join(CONFIG_DIR, name + '.py'))


def test_every_config_is_listed():
    names = {
        os.path.basename(path)[:-3]
        for path in glob.glob(os.path.join(CONFIG_DIR, '*.py'))
    }
    assert names == set(FINETUNE) | set(LINEAR)


def transforms(cfg, loader='train_dataloader'):
    return [step['type'] for step in cfg[loader].dataset.pipeline]


@pytest.mark.parametrize('name', sorted(FINETUNE))
def test_finetune_recipe(name):
    lr, decay, epochs, batch, drop_path, width = FINETUNE[name]
    cfg = load(name)
    optimizer = cfg.optim_wrapper.optimizer
    assert (optimizer.type, optimizer.lr, optimizer.weight_decay,
            optimizer.betas) == ('AdamW', lr, 0.05, (0.9, 0.999))
    assert cfg.optim_wrapper.constructor == \
        'BackboneLayerDecayOptimWrapperConstructor'
    assert cfg.optim_wrapper.paramwise_cfg.layer_decay_rate == decay
    assert cfg.train_cfg.max_epochs == epochs
    assert cfg.param_scheduler[0]['end'] == 5  # warm-up epochs
    assert cfg.param_scheduler[1]['end'] == epochs
    assert cfg.param_scheduler[1]['T_max'] == epochs - 5
    assert cfg.train_dataloader.batch_size * 8 == batch
    assert cfg.auto_scale_lr.base_batch_size == batch
    assert cfg.model.backbone.drop_path_rate == drop_path
    assert cfg.model.head.in_channels == width
    init = cfg.model.backbone.init_cfg
    assert init.type == 'StrictPretrained'
    assert init.checkpoint.endswith('mmpretrain_backbone.pth')
    augments = [aug['type'] for aug in cfg.model.train_cfg.augments]
    if 'moma' in name:  # AutoAugment + CutMix (MOMA §4.1)
        assert 'AutoAugment' in transforms(cfg)
        assert augments == ['CutMix']
    else:  # MAE: RandAugment, random erasing, mixup + cutmix
        assert {'RandAugment', 'RandomErasing'} <= set(transforms(cfg))
        assert augments == ['Mixup', 'CutMix']
    if 'cifar' in name:
        classes = int(name.rsplit('cifar', 1)[1])
        assert cfg.model.head.num_classes == classes
        assert cfg.train_dataloader.dataset.type == f'CIFAR{classes}'
        assert cfg.train_dataloader.dataset.download is False
        assert cfg.val_dataloader.dataset.download is False
    else:
        assert cfg.model.head.num_classes == 1000
        assert cfg.train_dataloader.dataset.type == 'ImageNet'


@pytest.mark.parametrize('name', sorted(LINEAR))
def test_linear_probe_recipe(name):
    lr, epochs, batch = LINEAR[name]
    cfg = load(name)
    optimizer = cfg.optim_wrapper.optimizer
    assert (optimizer.type, optimizer.lr, optimizer.weight_decay) == (
        'LARS', lr, 0.0)
    assert cfg.train_cfg.max_epochs == epochs
    assert cfg.param_scheduler[1]['end'] == epochs
    assert cfg.train_dataloader.batch_size * 8 == batch
    assert cfg.model.backbone.frozen_stages == 12  # all of ViT-B
    assert cfg.model.neck.type == 'ClsBatchNormNeck'
    assert transforms(cfg) == ['LoadImageFromFile', 'RandomResizedCrop',
                               'RandomFlip', 'PackInputs']
