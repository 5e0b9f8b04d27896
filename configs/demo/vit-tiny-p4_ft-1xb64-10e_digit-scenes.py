# The demo's one fine-tuning recipe, identical for every pre-training method:
# an mmpretrain ImageClassifier whose tiny ViT is initialised (strictly) from
# a pre-training checkpoint given as
#   --cfg-options model.backbone.init_cfg.checkpoint=PATH
# or randomly with --cfg-options model.backbone.init_cfg=None.
_base_ = [
    '../_base_/datasets/digit_scenes_cls.py',
    '../_base_/datasets/digit_scenes_knn.py',
    '../_base_/default_runtime.py',
]
# Tiny ViT for the CPU demo: 32 px images, 4 px patches (8 x 8 = 64 tokens).
arch = dict(
    embed_dims=128, num_layers=4, num_heads=4, feedforward_channels=512)
img_size = 32
patch_size = 4

model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='MaskedViT',
        arch=arch,
        img_size=img_size,
        patch_size=patch_size,
        drop_path_rate=0.1,
        out_type='avg_featmap',  # global pooling + fc_norm (ln2), as MAE
        final_norm=True,
        init_cfg=dict(
            type='StrictPretrained',
            checkpoint=None,
            prefix='backbone.',
            allowed_missing=['ln2.*'])),
    neck=None,
    head=dict(
        type='LinearClsHead',
        num_classes=10,
        in_channels=arch['embed_dims'],
        loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1),
        init_cfg=dict(type='TruncNormal', layer='Linear', std=2e-5)))

max_epochs = 10
optim_wrapper = dict(
    optimizer=dict(
        type='AdamW', lr=2e-3, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='BackboneLayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(
        layer_decay_rate=0.75,
        custom_keys={
            '.ln': dict(decay_mult=0.0),
            '.bias': dict(decay_mult=0.0),
            '.cls_token': dict(decay_mult=0.0),
            '.pos_embed': dict(decay_mult=0.0)
        }))
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
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=max_epochs)
val_cfg = dict()
test_cfg = dict()
default_hooks = dict(checkpoint=dict(interval=max_epochs, max_keep_ckpts=1))
