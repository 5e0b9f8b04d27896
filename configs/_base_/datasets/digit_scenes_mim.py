# Digit scenes for masked image modelling (the MAE and SdAE demos): one
# random resized crop per image, no flip (digits are not mirror-symmetric).
_base_ = ['./digit_scenes_pretrain.py']
train_dataloader = dict(
    dataset=dict(pipeline=[
        dict(type='LoadImageFromFile'),
        dict(
            type='RandomResizedCrop',
            scale=32,
            crop_ratio_range=(0.5, 1.0),
            backend='pillow',
            interpolation='bicubic'),
        dict(type='PackInputs'),
    ]))
