# ImageNet-1k for M-MoCo / M-BYOL pre-training (paper §4.1, Table 8): light
# augmentation, i.e. one shared RandomResizedCrop(224) + flip and colour
# augmentation (MoCo v3's jitter + grayscale) drawn twice. The paper's
# other modes (Table 4) are configs of their own:
# configs/mmoco/mmoco-{medium,strong}-aug_*_in1k.py.
# Batch 4096 = 8 GPUs x 512. drop_last=True as MoCo v3's main_moco.py
# (DataLoader(..., drop_last=True)): every step sees a full batch, so the
# InfoNCE negatives and the (Sync)BN statistics never come from a short
# last batch.
dataset_type = 'ImageNet'
data_root = 'data/imagenet/'
data_preprocessor = dict(
    type='SelfSupDataPreprocessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    to_rgb=True)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ContrastiveViews', mode='light', crop_size=224),
    dict(type='PackInputs')
]
train_dataloader = dict(
    batch_size=512,
    num_workers=10,
    persistent_workers=True,
    pin_memory=True,
    drop_last=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='train',
        pipeline=train_pipeline))
