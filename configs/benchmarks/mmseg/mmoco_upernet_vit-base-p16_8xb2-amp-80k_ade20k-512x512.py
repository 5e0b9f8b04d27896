# M-MoCo §4.2 ("Semantic segmentation on ADE20k"): UperNet + ViT-B/16 from
# configs/mmoco/mmoco_vit-base-p16_8xb512-amp-coslr-300e_in1k.py, the
# BEiT / MAE recipe but a shorter schedule: 80k iterations, batch 16.
_base_ = './upernet_vit-base-p16_8xb2-amp-160k_ade20k-512x512.py'

max_iters = 80000
model = dict(
    backbone=dict(
        init_cfg=dict(checkpoint='checkpoints/mmoco_vit-base-p16_300e/'
                      'mmseg_backbone_512px.pth')))
param_scheduler = [
    dict(
        type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0,
        end=1500),
    dict(
        type='PolyLR',
        eta_min=0.0,
        power=1.0,
        begin=1500,
        end=max_iters,
        by_epoch=False),
]
train_cfg = dict(max_iters=max_iters, val_interval=8000)
default_hooks = dict(checkpoint=dict(interval=8000))
