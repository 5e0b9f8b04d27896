# SdAE §3.1 and Table 2 (linear probing: 64.9 % after 300 pre-training
# epochs): the paper gives no protocol; MAE's linear protocol of the base.
_base_ = './_base_/vit-base-p16_linear-90e_in1k.py'
model = dict(
    backbone=dict(
        init_cfg=dict(checkpoint='checkpoints/sdae_vit-base-p16_300e/'
                      'mmpretrain_backbone.pth')))
