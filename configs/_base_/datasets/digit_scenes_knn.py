# kNN evaluation data: the embedded digit-scenes set, written by
#   python tools/dataset_converters/make_digit_scenes.py \
#       --out data/digit_scenes
# Used by tools/knn_eval.py (it reads `knn_train_dataloader` and
# `knn_val_dataloader`) and by KNNEvalHook, e.g.
#   custom_hooks = [dict(type='KNNEvalHook',
#                        train_dataloader={{_base_.knn_train_dataloader}},
#                        val_dataloader={{_base_.knn_val_dataloader}})]
# Batches are collated with `default_collate` (one stacked tensor), which both
# SelfSupDataPreprocessor (it requires it) and ClsDataPreprocessor accept; the
# model's data_preprocessor normalises them.
knn_data_root = 'data/digit_scenes'
knn_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='PackInputs'),
]
knn_train_dataloader = dict(
    batch_size=128,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type='CustomDataset',
        data_root=knn_data_root,
        data_prefix='train',
        pipeline=knn_pipeline))
knn_val_dataloader = dict(
    batch_size=128,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type='CustomDataset',
        data_root=knn_data_root,
        data_prefix='val',
        pipeline=knn_pipeline))
