# ImageNet-1k for M-MoCo / M-BYOL pre-training (paper §4.1, Table 8): light
# augmentation, i.e. one shared RandomResizedCrop(224) + flip and colour
# augmentation (MoCo v3's jitter + grayscale) drawn twice. The paper's
# other modes (Table 4): set
#   --cfg-options train_dataloader.dataset.pipeline.1.mode=medium (or strong)
# Batch 4096 = 8 GPUs x 512.
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
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='train',
        pipeline=train_pipeline))
