# M-MoCo as a tiny CPU demo on the digit scenes: MoCo v3 whose online
# encoder sees each view's 64 shuffled patches as n = 8 chunks of 8 (each
# with its own CLS token), LayerNorm heads, light augmentation (one shared
# crop, colour augmentation twice). The demo's n = 1 baseline is
# mmoco-n1_vit-tiny-p4_1xb128-12e_digit-scenes.py. Model: the demo MoCo v3's
# tiny ViT and head widths; optimiser: the paper's AdamW betas (0.9, 0.95)
# and weight decay 0.1 at the demo MoCo v3's lr.
_base_ = [
    '../_base_/models/mmoco_vit-base-p16.py',
    '../_base_/datasets/digit_scenes_pretrain.py',
    '../_base_/datasets/digit_scenes_knn.py',
    '../_base_/default_runtime.py',
]
# Tiny ViT for the CPU demo: 32 px images, 4 px patches (8 x 8 = 64 tokens).
arch = dict(
    embed_dims=128, num_layers=4, num_heads=4, feedforward_channels=512)
img_size = 32
model = dict(
    num_chunks=8,
    # momentum 0.9 -> 1 (cosine): the paper's 0.99 -> 1 over 132 demo
    # iterations keeps half of the momentum encoder's random init
    base_momentum=0.9,
    backbone=dict(
        arch=dict(_delete_=True, **arch), img_size=img_size, patch_size=4),
    neck=dict(hid_channels=512, out_channels=128),
    predictor=dict(hid_channels=512))
# light augmentation at 32 px: the demo MoCo v3's crop scale, no flip
# (digits are not mirror-symmetric)
train_dataloader = dict(
    dataset=dict(pipeline=[
        dict(type='LoadImageFromFile'),
        dict(
            type='ContrastiveViews',
            mode='light',
            crop_size=img_size,
            crop_scale=(0.3, 1.0),
            flip_prob=0.0),
        dict(type='PackInputs'),
    ]))

max_epochs = 12  # demo budget raised for issue 17 (the
# fine-tune column it paid for is now opt-in, see tools/run_demo.py)
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW', lr=1e-3, betas=(0.9, 0.95), weight_decay=0.1))
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-3,
        by_epoch=True,
        begin=0,
        end=2,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        T_max=max_epochs - 2,
        by_epoch=True,
        begin=2,
        end=max_epochs,
        convert_to_iter_based=True),
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs)
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(interval=max_epochs, max_keep_ckpts=1))
custom_hooks = [
    dict(type='RNGStateHook'),
    dict(type='TeacherEMAHook'),
    dict(type='ConcentrationMonitorHook', interval=10),
]
