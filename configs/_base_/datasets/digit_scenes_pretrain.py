# Digit scenes (made by tools/dataset_converters/make_digit_scenes.py):
# unlabelled pre-training on the train split. Methods set the pipeline.
dataset_type = 'CustomDataset'
data_root = 'data/digit_scenes'
data_preprocessor = dict(
    type='SelfSupDataPreprocessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    to_rgb=True)
train_dataloader = dict(
    batch_size=128,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix='train',
        pipeline=[]))
