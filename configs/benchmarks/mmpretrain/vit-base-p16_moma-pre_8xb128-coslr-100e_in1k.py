# MOMA §4.1 "Fine-tuning" / "Data Augmentation" / "Optimizer": AdamW lr
# 1.5e-3, wd 0.05, betas (0.9, 0.999), batch 1024, 100 epochs with 5 warm-up,
# random resized crop + AutoAugment + CutMix. The paper names no layer decay,
# drop path or label smoothing: MAE's (0.65, 0.1, 0.1) are kept.
_base_ = './_base_/vit-base-p16_ft-100e_in1k.py'
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='RandomResizedCrop',
        scale=224,
        backend='pillow',
        interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(
        type='AutoAugment',
        policies='imagenet',
        hparams=dict(pad_val=[104, 116, 124], interpolation='bicubic')),
    dict(type='PackInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
model = dict(
    backbone=dict(
        init_cfg=dict(checkpoint='checkpoints/moma-mae-large-to-mocov3_'
                      'vit-base-p16/mmpretrain_backbone.pth')),
    train_cfg=dict(augments=[dict(type='CutMix', alpha=1.0)]))
optim_wrapper = dict(optimizer=dict(lr=1.5e-3))
