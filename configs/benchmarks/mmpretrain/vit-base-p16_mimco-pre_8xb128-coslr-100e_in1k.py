# MimCo §4.1 (iBOT's fine-tuning protocol) and Table 6, ViT-B/16: layer decay
# 0.65, drop path 0.1, 100 epochs (83.9 % after 300 pre-training epochs).
# The remaining settings are the MAE recipe of the base.
_base_ = './_base_/vit-base-p16_ft-100e_in1k.py'
model = dict(
    backbone=dict(
        init_cfg=dict(checkpoint='checkpoints/mimco_vit-base-p16_300e/'
                      'mmpretrain_backbone.pth')))
