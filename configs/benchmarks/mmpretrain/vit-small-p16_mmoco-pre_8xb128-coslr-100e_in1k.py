# Table 4's ViT-S fine-tune ("ViT-S: pre-train and fine-tune 100 epochs";
# Light Aug. 79.9 %): the ImageNet-1k fine-tuning recipe of §4.2 / Table 8
# ("the same as MAE repo"): blr 5e-4 (lr 2e-3 at batch 1024), wd 0.05,
# betas (0.9, 0.999), layer decay 0.65, drop path 0.1, 100 epochs with 5
# warm-up, RandAug + mixup + cutmix, with MoCo v3's ViT-S (12 heads) from
# configs/mmoco/mmoco_vit-small-p16_8xb512-amp-coslr-100e_in1k.py.
_base_ = './vit-base-p16_mmoco-pre_8xb128-coslr-100e_in1k.py'
vit_small = dict(
    embed_dims=384, num_layers=12, num_heads=12, feedforward_channels=1536)
model = dict(
    backbone=dict(
        arch=dict(_delete_=True, **vit_small),
        init_cfg=dict(checkpoint='checkpoints/mmoco_vit-small-p16_100e/'
                      'mmpretrain_backbone.pth')),
    head=dict(in_channels=vit_small['embed_dims']))
