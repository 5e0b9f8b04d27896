"""The ImageNet / CIFAR transfer configs (configs/benchmarks/mmpretrain)
hold each paper's recipe, as loaded (unshrunk). (That every one of them
trains and validates: test_benchmark_configs.py.)"""
import glob
import os
from typing import NamedTuple

import pytest
from mmengine.config import Config

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
CONFIG_DIR = os.path.join(REPO_ROOT, 'configs', 'benchmarks', 'mmpretrain')
#: MoCo v3's ViT-S (12 heads), the arch every ViT-S pre-training uses
VIT_SMALL = dict(embed_dims=384, num_layers=12, num_heads=12,
                 feedforward_channels=1536)
#: the normalisation every pre-training config uses (RGB order)
IMAGENET_RGB_MEAN = [123.675, 116.28, 103.53]
IMAGENET_RGB_STD = [58.395, 57.12, 57.375]


class FineTune(NamedTuple):
    blr: float  # lr per 256 images
    layer_decay: float
    epochs: int
    batch: int  # GPUs x images per GPU
    drop_path: float
    arch: object  # the backbone's arch, as the pre-training's
    width: int
    classes: int
    dataset: str


MAE_VIT_B = FineTune(5e-4, 0.65, 100, 1024, 0.1, 'b', 768, 1000, 'ImageNet')
FINETUNE = {
    # SdAE §4.1, M-MoCo §3.1 / Table 8: MAE's recipe
    'vit-base-p16_sdae-pre_8xb128-coslr-100e_in1k': MAE_VIT_B,
    'vit-base-p16_mmoco-pre_8xb128-coslr-100e_in1k': MAE_VIT_B,
    # M-MoCo Table 4: ViT-S fine-tuned 100 epochs, ViT-B 60 epochs
    'vit-small-p16_mmoco-pre_8xb128-coslr-100e_in1k':
    MAE_VIT_B._replace(arch=VIT_SMALL, width=384),
    'vit-base-p16_mmoco-pre_8xb128-coslr-60e_in1k':
    MAE_VIT_B._replace(epochs=60),
    # M-MoCo §3.1: ImageNet-100, ViT-S, MAE's recipe
    'vit-small-p16_mmoco-pre_8xb128-coslr-100e_in100':
    MAE_VIT_B._replace(arch=VIT_SMALL, width=384, classes=100,
                       dataset='CustomDataset'),
    # MOMA §4.1: lr 1.5e-3 at batch 1024
    'vit-base-p16_moma-pre_8xb128-coslr-100e_in1k':
    MAE_VIT_B._replace(blr=1.5e-3 / 4),
    # MOMA Table 3: the ViT-S student, the same recipe
    'vit-small-p16_moma-pre_8xb128-coslr-100e_in1k':
    MAE_VIT_B._replace(blr=1.5e-3 / 4, arch=VIT_SMALL, width=384),
    # MimCo §4.1 / Table 6
    'vit-base-p16_mimco-pre_8xb128-coslr-100e_in1k': MAE_VIT_B,
    'vit-small-p16_mimco-pre_8xb128-coslr-300e_in1k':
    MAE_VIT_B._replace(layer_decay=0.75, epochs=300, arch=VIT_SMALL,
                       width=384),
    'swin-tiny_mimco-pre_8xb128-coslr-100e_in1k':
    MAE_VIT_B._replace(layer_decay=0.75, arch='tiny'),
    'swin-base_mimco-pre_8xb128-coslr-100e_in1k':
    MAE_VIT_B._replace(layer_decay=0.8, drop_path=0.2, arch='base',
                       width=1024),
}

#: MOMA Table 6 / §4.3: MoCo v3's published CIFAR transfer (DeiT code,
#: 8 x 128, --lr 3e-4 scaled by batch / 512, wd 0.1, 100 epochs, 3 warm-up,
#: drop path 0.1, no layer decay, no random erasing) -> CIFAR-10 / -100 mixup
CIFAR = {
    'vit-base-p16_moma-pre_8xb128-coslr-100e_cifar10': (10, 0.8),
    'vit-base-p16_moma-pre_8xb128-coslr-100e_cifar100': (100, 0.5),
}


class Linear(NamedTuple):
    blr: float
    epochs: int
    batch: int
    arch: object
    width: int
    classes: int
    dataset: str


LINEAR = {
    # MAE appendix A.2 (SdAE §4.1 uses it): blr 0.1, batch 16384, 90 epochs
    'vit-base-p16_sdae-pre_8xb2048-linear-coslr-90e_in1k':
    Linear(0.1, 90, 16384, 'b', 768, 1000, 'ImageNet'),
    # M-MoCo §3.1: blr 1.0, batch 4096, 100 epochs
    'vit-small-p16_mmoco-pre_8xb512-linear-coslr-100e_in100':
    Linear(1.0, 100, 4096, VIT_SMALL, 384, 100, 'CustomDataset'),
}


def load(name: str) -> Config:
    return Config.fromfile(os.path.join(CONFIG_DIR, name + '.py'))


def test_every_config_is_listed():
    names = {
        os.path.basename(path)[:-3]
        for path in glob.glob(os.path.join(CONFIG_DIR, '*.py'))
    }
    assert names == set(FINETUNE) | set(LINEAR) | set(CIFAR)


def steps(cfg: Config, loader: str = 'train_dataloader') -> dict:
    """The pipeline's transforms by type."""
    return {step['type']: step for step in cfg[loader].dataset.pipeline}


def check_schedule(cfg: Config, epochs: int, warmup: int) -> None:
    warm, cosine = cfg.param_scheduler
    assert (warm['type'], warm['begin'], warm['end']) == ('LinearLR', 0,
                                                          warmup)
    assert (cosine['type'], cosine['begin'], cosine['end'],
            cosine['T_max']) == ('CosineAnnealingLR', warmup, epochs,
                                 epochs - warmup)
    assert warm['convert_to_iter_based'] and cosine['convert_to_iter_based']
    assert cfg.train_cfg.max_epochs == epochs


def check_data(cfg: Config, recipe) -> None:
    assert cfg.data_preprocessor.num_classes == recipe.classes
    assert cfg.model.head.num_classes == recipe.classes
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        assert cfg[loader].dataset.type == recipe.dataset
    assert cfg.train_dataloader.batch_size * 8 == recipe.batch
    assert cfg.auto_scale_lr.base_batch_size == recipe.batch
    # lr = blr x batch / 256 (MAE's scaling rule)
    assert cfg.optim_wrapper.optimizer.lr == pytest.approx(
        recipe.blr * recipe.batch / 256)


@pytest.mark.parametrize('name', sorted(FINETUNE))
def test_finetune_recipe(name):
    recipe = FINETUNE[name]
    cfg = load(name)
    check_data(cfg, recipe)
    optimizer = cfg.optim_wrapper.optimizer
    assert (optimizer.type, optimizer.weight_decay, optimizer.betas) == (
        'AdamW', 0.05, (0.9, 0.999))
    assert cfg.optim_wrapper.constructor == \
        'BackboneLayerDecayOptimWrapperConstructor'
    assert cfg.optim_wrapper.paramwise_cfg.layer_decay_rate == \
        recipe.layer_decay
    check_schedule(cfg, recipe.epochs, warmup=5)
    backbone = cfg.model.backbone
    assert backbone.drop_path_rate == recipe.drop_path
    assert backbone.arch == recipe.arch
    assert cfg.model.head.in_channels == recipe.width
    assert cfg.model.head.loss == dict(
        type='LabelSmoothLoss', label_smooth_val=0.1, mode='original')
    init = backbone.init_cfg
    assert init.type == 'StrictPretrained'
    assert init.checkpoint.startswith('checkpoints/')
    assert init.checkpoint.endswith('/mmpretrain_backbone.pth')
    if name.startswith('vit'):
        assert backbone.type == 'MaskedViT'
        # MAE's global pool + fc_norm (ln2): all the checkpoint lacks
        assert backbone.out_type == 'avg_featmap'
        assert init.allowed_missing == ['ln2.*']
    else:
        assert backbone.type == 'SwinTransformer'
        assert init.get('allowed_missing', []) == []
    augments = {aug['type']: aug for aug in cfg.model.train_cfg.augments}
    train = steps(cfg)
    if 'moma' in name:  # MOMA §4.1: crop, AutoAugment, CutMix
        assert train['AutoAugment']['policies'] == 'imagenet'
        assert 'RandAugment' not in train and 'RandomErasing' not in train
        assert augments == {'CutMix': dict(type='CutMix', alpha=1.0)}
    else:  # MAE: RandAugment m9-mstd0.5, erasing 0.25, mixup + cutmix
        rand = train['RandAugment']
        assert (rand['policies'], rand['num_policies'],
                rand['magnitude_level'], rand['magnitude_std']) == (
                    'timm_increasing', 2, 9, 0.5)
        assert train['RandomErasing']['erase_prob'] == 0.25
        assert augments == {'Mixup': dict(type='Mixup', alpha=0.8),
                            'CutMix': dict(type='CutMix', alpha=1.0)}
    assert train['RandomResizedCrop']['scale'] == 224
    assert steps(cfg, 'val_dataloader')['CenterCrop']['crop_size'] == 224


@pytest.mark.parametrize('name', sorted(CIFAR))
def test_cifar_recipe_is_mocov3_transfer(name):
    classes, mixup = CIFAR[name]
    cfg = load(name)
    assert cfg.train_dataloader.batch_size * 8 == 1024
    assert cfg.auto_scale_lr.base_batch_size == 1024
    # DeiT's scaling: lr = 3e-4 x 1024 / 512
    assert cfg.optim_wrapper.optimizer.lr == pytest.approx(6e-4)
    optimizer = cfg.optim_wrapper.optimizer
    assert (optimizer.type, optimizer.weight_decay, optimizer.betas) == (
        'AdamW', 0.1, (0.9, 0.999))
    assert 'constructor' not in cfg.optim_wrapper  # no layer decay
    check_schedule(cfg, 100, warmup=3)
    backbone = cfg.model.backbone
    assert (backbone.arch, backbone.drop_path_rate) == ('b', 0.1)
    assert backbone.out_type == 'cls_token'  # DeiT's classifier
    assert backbone.init_cfg.allowed_missing == []
    assert cfg.model.head.num_classes == cfg.data_preprocessor.num_classes \
        == classes
    assert cfg.model.head.loss == dict(
        type='LabelSmoothLoss', label_smooth_val=0.1, mode='original')
    augments = [dict(aug) for aug in cfg.model.train_cfg.augments]
    assert augments == [dict(type='Mixup', alpha=mixup),
                        dict(type='CutMix', alpha=1.0)]
    train = steps(cfg)
    assert list(train) == ['RandomResizedCrop', 'RandomFlip', 'RandAugment',
                           'PackInputs']  # no random erasing (--reprob 0)
    assert train['RandomResizedCrop']['scale'] == 224
    rand = train['RandAugment']
    assert (rand['policies'], rand['num_policies'], rand['magnitude_level'],
            rand['magnitude_std']) == ('timm_increasing', 2, 9, 0.5)
    assert rand['hparams']['pad_val'] == [124, 116, 104]  # RGB arrays
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        assert cfg[loader].dataset.type == f'CIFAR{classes}'
        assert cfg[loader].dataset.download is False
    assert steps(cfg, 'val_dataloader')['Resize']['scale'] == 224
    # the pre-training's (ImageNet) normalisation; CIFAR arrays are RGB
    preprocessor = cfg.data_preprocessor
    assert (preprocessor.mean, preprocessor.std, preprocessor.to_rgb) == (
        IMAGENET_RGB_MEAN, IMAGENET_RGB_STD, False)


@pytest.mark.parametrize('name', sorted(LINEAR))
def test_linear_probe_recipe(name):
    recipe = LINEAR[name]
    cfg = load(name)
    check_data(cfg, recipe)
    optimizer = cfg.optim_wrapper.optimizer
    assert (optimizer.type, optimizer.weight_decay, optimizer.momentum) == (
        'LARS', 0.0, 0.9)
    assert 'constructor' not in cfg.optim_wrapper
    check_schedule(cfg, recipe.epochs, warmup=10)
    backbone = cfg.model.backbone
    assert backbone.arch == recipe.arch
    assert backbone.frozen_stages == 12  # every block of the ViT
    assert (backbone.out_type, backbone.final_norm) == ('cls_token', True)
    assert 'allowed_missing' not in backbone.init_cfg  # loads everything
    assert cfg.model.neck == dict(type='ClsBatchNormNeck',
                                  input_features=recipe.width)
    assert cfg.model.head.in_channels == recipe.width
    assert list(steps(cfg)) == ['LoadImageFromFile', 'RandomResizedCrop',
                                'RandomFlip', 'PackInputs']
    assert 'augments' not in cfg.model.get('train_cfg', {})
