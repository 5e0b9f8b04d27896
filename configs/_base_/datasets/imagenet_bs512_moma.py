# ImageNet-1k for MOMA pre-training (paper §4.1 "Data Augmentation"): random
# resized crop + horizontal flip for the original view; the strong view (for
# a MoCo teacher, §3.3) applies MoCo v3's colour jitter / grayscale / blur /
# solarize to the SAME crop, so token positions still correspond.
# Pipeline views: 0 = original (every teacher sees it), 1 = strong.
dataset_type = 'ImageNet'
data_root = 'data/imagenet/'
data_preprocessor = dict(
    type='SelfSupDataPreprocessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    to_rgb=True)

# MoCo v3's second (BYOL-style) view without its crop / flip (paper: "we
# followed MoCo v3 and BYOL"; which of the two asymmetric views is not said).
strong_augmentation = [
    dict(
        type='RandomApply',
        transforms=[
            dict(
                type='ColorJitter',
                brightness=0.4,
                contrast=0.4,
                saturation=0.2,
                hue=0.1)
        ],
        prob=0.8),
    dict(
        type='RandomGrayscale',
        prob=0.2,
        keep_channels=True,
        channel_weights=(0.114, 0.587, 0.2989)),
    dict(
        type='GaussianBlur',
        magnitude_range=(0.1, 2.0),
        magnitude_std='inf',
        prob=0.1),
    dict(type='Solarize', thr=128, prob=0.2),
]
shared_crop = [
    dict(type='LoadImageFromFile'),
    dict(
        type='RandomResizedCrop',
        scale=224,
        crop_ratio_range=(0.2, 1.0),
        backend='pillow',
        interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5),
]
# Two views: MultiView deep-copies the cropped image, then augments view 1.
train_pipeline = shared_crop + [
    dict(
        type='MultiView',
        num_views=[1, 1],
        transforms=[[], strong_augmentation]),
    dict(type='PackInputs'),
]
# Original view only: for recipes whose teachers are all MAE (§3.3 "MAE to
# MoCo": no strong augmentation for the student).
original_view_pipeline = shared_crop + [dict(type='PackInputs')]

train_dataloader = dict(
    batch_size=512,
    num_workers=8,
    persistent_workers=True,
    pin_memory=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='train',
        pipeline=train_pipeline))
