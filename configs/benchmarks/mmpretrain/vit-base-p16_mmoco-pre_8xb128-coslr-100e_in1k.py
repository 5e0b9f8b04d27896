# M-MoCo §3.1 / Table 8: fine-tuning "follows the public repository of MAE":
# blr 5e-4, wd 0.05, layer decay 0.65, drop path 0.1, batch 1024, 100
# epochs, RandAug + mixup + cutmix (Table 5: 83.8 % after 300 epochs).
_base_ = './_base_/vit-base-p16_ft-100e_in1k.py'
model = dict(
    backbone=dict(
        init_cfg=dict(checkpoint='checkpoints/mmoco_vit-base-p16_300e/'
                      'mmpretrain_backbone.pth')))
