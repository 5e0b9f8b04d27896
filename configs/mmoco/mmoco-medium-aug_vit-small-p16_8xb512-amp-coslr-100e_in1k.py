# Table 4, ViT-S "Medium Aug.": 79.7 % fine-tune (as far as our copy of the
# table is legible). mmoco_vit-small-p16_8xb512-amp-coslr-100e_in1k with
# "Medium Augmentation. We extract a single 256x256 crop, and then get two
# 224x224 crops along the diagonal with a random distance between 0 and 32
# pixels ... Afterwards, we apply color augmentation to them" (§4.1).
_base_ = ['./mmoco_vit-small-p16_8xb512-amp-coslr-100e_in1k.py']
train_dataloader = dict(dataset=dict(pipeline=[
    dict(type='LoadImageFromFile'),
    dict(
        type='ContrastiveViews', mode='medium', crop_size=224, max_shift=32),
    dict(type='PackInputs')
]))
