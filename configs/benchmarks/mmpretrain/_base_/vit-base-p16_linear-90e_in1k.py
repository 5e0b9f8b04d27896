# Linear probing of a frozen pre-trained ViT-B/16 on ImageNet-1k: MAE's
# protocol (MAE appendix A.2): CLS token after the final norm, BatchNorm
# without affine parameters before the linear head, LARS lr 6.4 (blr 0.1 x
# 16384 / 256), wd 0, momentum 0.9, batch 16384 = 8 x 2048, 90 epochs with
# 10 warm-up, random resized crop + flip only.
_base_ = [
    './imagenet_bs128_ft.py',
    '../../../_base_/default_runtime.py',
]
max_epochs = 90
warmup_epochs = 10
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='RandomResizedCrop',
        scale=224,
        backend='pillow',
        interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=2048, drop_last=True, dataset=dict(pipeline=train_pipeline))
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='MaskedViT',
        arch='b',
        img_size=224,
        patch_size=16,
        frozen_stages=12,
        out_type='cls_token',
        final_norm=True,
        init_cfg=dict(
            type='StrictPretrained',
            checkpoint='checkpoints/vit-base-p16/mmpretrain_backbone.pth',
            prefix='backbone.')),
    neck=dict(type='ClsBatchNormNeck', input_features=768),
    head=dict(
        type='VisionTransformerClsHead',
        num_classes=1000,
        in_channels=768,
        loss=dict(type='CrossEntropyLoss'),
        init_cfg=[dict(type='TruncNormal', layer='Linear', std=0.01)]))
optim_wrapper = dict(
    type='AmpOptimWrapper',
    optimizer=dict(type='LARS', lr=6.4, weight_decay=0.0, momentum=0.9))
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-4,
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
        eta_min=0.0,
        convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=1)
val_cfg = dict()
test_cfg = dict()
default_hooks = dict(checkpoint=dict(interval=1, max_keep_ckpts=3))
auto_scale_lr = dict(base_batch_size=16384)
randomness = dict(seed=0, diff_rank_seed=True)
