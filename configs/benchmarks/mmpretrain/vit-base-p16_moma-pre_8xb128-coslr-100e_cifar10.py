# MOMA Table 6: CIFAR-10 fine-tuning of the ViT-L-MAE -> ViT-B-MoCo student
# (99.2 %). §4.3 "follow[s] the fine-tuning procedure described in (ViT) and
# (MoCo v3)"; MoCo v3 publishes its CIFAR transfer (moco-v3 CONFIG.md,
# "Transfer Learning"): the DeiT code on 8 GPUs with
#   --batch-size 128 --lr 3e-4 --weight-decay 0.1 --epochs 100
#   --warmup-epochs 3 --drop-path 0.1 --mixup 0.8 --cutmix 1 --reprob 0.0
#   --eval-crop-ratio 1.0 --no-repeated-aug
# (CIFAR-100: --mixup 0.5) and DeiT's defaults otherwise: AdamW, cosine to
# min-lr 1e-5 from warm-up-lr 1e-6, label smoothing 0.1, RandAugment
# rand-m9-mstd0.5-inc1, RandomResizedCrop 224 bicubic, CLS-token classifier,
# no weight decay on biases / norms / pos_embed / cls_token, no layer decay.
# Data: mmpretrain's CIFAR10 reads the python version,
# data/cifar10/cifar-10-batches-py/; it is never downloaded here
# (download=False): fetch https://www.cs.toronto.edu/~kriz/cifar.html first.
_base_ = './_base_/vit-base-p16_ft-100e_in1k.py'
num_classes = 10
max_epochs = 100  # MoCo v3 --epochs 100
warmup_epochs = 3  # MoCo v3 --warmup-epochs 3
batch_size = 8 * 128  # MoCo v3: 8 GPUs x --batch-size 128
# DeiT scales its --lr by total batch / 512: 3e-4 x 1024 / 512 = 6e-4
lr = 3e-4 * batch_size / 512
# The 32 x 32 images go through DeiT's ImageNet transform (timm
# create_transform, is_training=True): RandomResizedCrop to 224 (scale
# 0.08-1, bicubic), flip, RandAugment m9 mstd 0.5 (DeiT --aa); no colour
# jitter (timm skips it under AutoAugment) and no random erasing (--reprob 0).
# CIFAR arrays are RGB: pad with the RGB mean.
train_pipeline = [
    dict(
        type='RandomResizedCrop',
        scale=224,
        crop_ratio_range=(0.08, 1.0),
        backend='pillow',
        interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(
        type='RandAugment',
        policies='timm_increasing',
        num_policies=2,
        total_level=10,
        magnitude_level=9,
        magnitude_std=0.5,
        hparams=dict(pad_val=[124, 116, 104], interpolation='bicubic')),
    dict(type='PackInputs'),
]
# --eval-crop-ratio 1.0: resize to 224 / 1.0, centre crop 224 = resize only
test_pipeline = [
    dict(type='Resize', scale=224, backend='pillow',
         interpolation='bicubic'),
    dict(type='PackInputs'),
]
# The pre-training's normalisation (ImageNet statistics, as DeiT), not
# CIFAR's own; CIFAR arrays are RGB already (hence to_rgb=False).
data_preprocessor = dict(
    num_classes=num_classes,
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    to_rgb=False)
train_dataloader = dict(
    batch_size=128,
    drop_last=True,  # DeiT's training loader
    dataset=dict(
        _delete_=True,
        type='CIFAR10',
        data_root='data/cifar10',
        split='train',
        download=False,
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=128,
    dataset=dict(
        _delete_=True,
        type='CIFAR10',
        data_root='data/cifar10',
        split='test',
        download=False,
        pipeline=test_pipeline))
test_dataloader = val_dataloader
model = dict(
    backbone=dict(
        drop_path_rate=0.1,  # MoCo v3 --drop-path 0.1
        out_type='cls_token',  # DeiT classifies the CLS token after the norm
        init_cfg=dict(
            checkpoint='checkpoints/moma-mae-large-to-mocov3_'
            'vit-base-p16/mmpretrain_backbone.pth',
            allowed_missing=[])),  # cls_token pooling adds no fc_norm
    head=dict(num_classes=num_classes),  # label smoothing 0.1 (DeiT)
    # --mixup 0.8 --cutmix 1: DeiT switches between them (switch prob 0.5),
    # as mmpretrain's augments list picks one per batch
    train_cfg=dict(augments=[
        dict(type='Mixup', alpha=0.8),
        dict(type='CutMix', alpha=1.0)
    ]))
optim_wrapper = dict(
    _delete_=True,  # no layer decay (DeiT): the plain constructor
    type='AmpOptimWrapper',
    optimizer=dict(
        type='AdamW', lr=lr, weight_decay=0.1, betas=(0.9, 0.999)),
    paramwise_cfg=dict(
        custom_keys={
            '.ln': dict(decay_mult=0.0),
            '.bias': dict(decay_mult=0.0),
            '.cls_token': dict(decay_mult=0.0),
            '.pos_embed': dict(decay_mult=0.0)
        }))
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-6 / lr,  # DeiT --warmup-lr 1e-6
        by_epoch=True,
        begin=0,
        end=warmup_epochs,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        T_max=max_epochs - warmup_epochs,
        by_epoch=True,
        begin=warmup_epochs,
        end=max_epochs,
        eta_min=1e-5,  # DeiT --min-lr 1e-5
        convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=1)
auto_scale_lr = dict(base_batch_size=batch_size)
