# MimCo §4.1 and Table 6, ViT-S/16: layer decay 0.75, drop path 0.1, 300
# epochs (82.7 % after 300 pre-training epochs). The remaining settings are
# the MAE recipe of the base. The backbone is the pre-training's (MoCo v3's
# ViT-S: 384-d, 12 heads, configs/mimco); DeiT-S's 6 heads would load the
# same tensors without error but compute a different function.
_base_ = './_base_/vit-base-p16_ft-100e_in1k.py'
max_epochs = 300
warmup_epochs = 5
vit_small = dict(
    embed_dims=384, num_layers=12, num_heads=12, feedforward_channels=1536)
model = dict(
    backbone=dict(
        arch=dict(_delete_=True, **vit_small),
        init_cfg=dict(checkpoint='checkpoints/mimco_vit-small-p16_300e/'
                      'mmpretrain_backbone.pth')),
    head=dict(in_channels=vit_small['embed_dims']))
optim_wrapper = dict(paramwise_cfg=dict(layer_decay_rate=0.75))
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
train_cfg = dict(max_epochs=max_epochs)
