# M-MoCo §4.2 "Fine-tuning results" ("the same as MAE repo (see Section
# 3.1)") and appendix Table 8: blr 5e-4, wd 0.05, betas (0.9, 0.999), layer
# decay 0.65, drop path 0.1, batch 1024, 100 epochs with 5 warm-up, RandAug
# + mixup + cutmix (Table 5: 83.6 % / 83.8 % after 300 / 800 epochs).
_base_ = './_base_/vit-base-p16_ft-100e_in1k.py'
model = dict(
    backbone=dict(
        init_cfg=dict(checkpoint='checkpoints/mmoco_vit-base-p16_300e/'
                      'mmpretrain_backbone.pth')))
