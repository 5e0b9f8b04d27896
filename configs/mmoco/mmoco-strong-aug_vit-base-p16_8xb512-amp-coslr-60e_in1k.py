# Table 4, ViT-B "Strong Aug.": 81.4 % fine-tune.
# mmoco_vit-base-p16_8xb512-amp-coslr-60e_in1k with "Strong Augmentation ...
# we independently extract two crops, and apply color augmentation (e.g.,
# color jitter and gray scale) and Gaussian blur to them. Lastly we solarize
# one of the crop" (§4.1; MoCo v3's two pipelines).
_base_ = ['./mmoco_vit-base-p16_8xb512-amp-coslr-60e_in1k.py']
train_dataloader = dict(dataset=dict(pipeline=[
    dict(type='LoadImageFromFile'),
    dict(type='ContrastiveViews', mode='strong', crop_size=224),
    dict(type='PackInputs')
]))
