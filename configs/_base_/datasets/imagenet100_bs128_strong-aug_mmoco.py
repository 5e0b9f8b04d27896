# ImageNet-100 with MoCo v3's strong augmentation, the augmentation of the
# paper's §3 ablations (§3.1: "Unless specified, our default setup follows
# MoCo-v3"; the lighter modes appear only in §4.1 / Table 4): two
# independent RandomResizedCrop(224, scale 0.08-1) + flip, colour jitter +
# grayscale, blur on both (p 1.0 / 0.1), solarize on the second (p 0.2)
# (ContrastiveViews(mode='strong') = MoCo v3's main_moco.py augmentation1 /
# augmentation2). Batch 1024 = 8 GPUs x 128, drop_last as MoCo v3.
_base_ = ['./imagenet100_bs128_mmoco.py']
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ContrastiveViews', mode='strong', crop_size=224),
    dict(type='PackInputs')
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
