# End-to-end fine-tuning of a pre-trained ViT-B/16 on ImageNet-1k: the MAE
# recipe (MAE appendix A.1; SdAE §3.1 and M-MoCo Table 8 use it as is):
# batch 1024 = 8 x 128, AdamW lr 2e-3 (blr 5e-4 x 1024 / 256), betas
# (0.9, 0.999), wd 0.05, layer decay 0.65, drop path 0.1, 100 epochs with 5
# warm-up, label smoothing 0.1, mixup 0.8 + cutmix 1.0.
# The backbone loads the bridge's file strictly
# (tools/model_converters/pretrain_to_transfer.py); set its path with
#   --cfg-options model.backbone.init_cfg.checkpoint=PATH
# Unlike MAE, the pre-trained final norm is kept (before the global pool and
# the new fc_norm), so no pre-trained tensor goes unused.
_base_ = [
    './imagenet_bs128_ft.py',
    '../../../_base_/default_runtime.py',
]
max_epochs = 100
warmup_epochs = 5
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='MaskedViT',
        arch='b',
        img_size=224,
        patch_size=16,
        drop_path_rate=0.1,
        out_type='avg_featmap',
        final_norm=True,
        init_cfg=dict(
            type='StrictPretrained',
            checkpoint='checkpoints/vit-base-p16/mmpretrain_backbone.pth',
            prefix='backbone.',
            allowed_missing=['ln2.*'])),  # the new fc_norm
    neck=None,
    head=dict(
        type='LinearClsHead',
        num_classes=1000,
        in_channels=768,
        loss=dict(
            type='LabelSmoothLoss', label_smooth_val=0.1, mode='original'),
        init_cfg=[dict(type='TruncNormal', layer='Linear', std=2e-5)]),
    train_cfg=dict(augments=[
        dict(type='Mixup', alpha=0.8),
        dict(type='CutMix', alpha=1.0)
    ]))
optim_wrapper = dict(
    type='AmpOptimWrapper',
    optimizer=dict(
        type='AdamW', lr=2e-3, weight_decay=0.05, betas=(0.9, 0.999)),
    constructor='BackboneLayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(
        layer_decay_rate=0.65,
        custom_keys={
            '.ln': dict(decay_mult=0.0),
            '.bias': dict(decay_mult=0.0),
            '.cls_token': dict(decay_mult=0.0),
            '.pos_embed': dict(decay_mult=0.0)
        }))
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-4,
        by_epoch=True,
        begin=0,
        end=warmup_epochs,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        T_max=max_epochs - warmup_epochs,
        by_epoch=True,
        begin=warmup_epochs,
        end=max_epochs,
        eta_min=1e-6,
        convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=1)
val_cfg = dict()
test_cfg = dict()
default_hooks = dict(checkpoint=dict(interval=1, max_keep_ckpts=3))
auto_scale_lr = dict(base_batch_size=1024)
randomness = dict(seed=0, diff_rank_seed=True)
