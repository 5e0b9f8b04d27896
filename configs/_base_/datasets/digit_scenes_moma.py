# Digit scenes for the MOMA demo: one random resized crop shared by the views
# (no flip: digits are not mirror-symmetric); view 0 original, view 1 the
# strong view (MoCo v3's colour / grayscale / blur / solarize, blur sized for
# 32 px as in configs/demo/mocov3_*.py) of the same crop.
img_size = 32
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
        magnitude_range=(0.1, 1.0),
        magnitude_std='inf',
        prob=0.1),
    dict(type='Solarize', thr=128, prob=0.2),
]
shared_crop = [
    dict(type='LoadImageFromFile'),
    dict(
        type='RandomResizedCrop',
        scale=img_size,
        crop_ratio_range=(0.5, 1.0),
        backend='pillow',
        interpolation='bicubic'),
]
two_view_pipeline = shared_crop + [
    dict(
        type='MultiView',
        num_views=[1, 1],
        transforms=[[], strong_augmentation]),
    dict(type='PackInputs'),
]
original_view_pipeline = shared_crop + [dict(type='PackInputs')]
