# M-MoCo §3.1 "Linear probing": LARS, blr 1.0 (lr 16 at batch 4096), wd 0,
# batch 4096 = 8 x 512, 100 epochs; MAE's protocol otherwise (BN before the
# head, 10 warm-up epochs). The paper reports linear accuracy only for its
# ImageNet-100 ViT-S (..._in100.py); this applies the same protocol to the
# ImageNet-1k ViT-B/16.
_base_ = './_base_/vit-base-p16_linear-90e_in1k.py'
max_epochs = 100
warmup_epochs = 10
train_dataloader = dict(batch_size=512)
model = dict(
    backbone=dict(
        init_cfg=dict(checkpoint='checkpoints/mmoco_vit-base-p16_300e/'
                      'mmpretrain_backbone.pth')))
optim_wrapper = dict(optimizer=dict(lr=16.0))
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
        eta_min=0.0,
        convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=max_epochs)
auto_scale_lr = dict(base_batch_size=4096)
