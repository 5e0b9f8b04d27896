# Table 4, ViT-S "Strong Aug.": 79.5 % fine-tune.
# mmoco_vit-small-p16_8xb512-amp-coslr-100e_in1k with "Strong Augmentation
# ... we independently extract two crops, and apply color augmentation (e.g.,
# color jitter and gray scale) and Gaussian blur to them. Lastly we solarize
# one of the crop" (§4.1; MoCo v3's two pipelines).
_base_ = ['./mmoco_vit-small-p16_8xb512-amp-coslr-100e_in1k.py']
train_dataloader = dict(dataset=dict(pipeline=[
    dict(type='LoadImageFromFile'),
    dict(type='ContrastiveViews', mode='strong', crop_size=224),
    dict(type='PackInputs')
]))
