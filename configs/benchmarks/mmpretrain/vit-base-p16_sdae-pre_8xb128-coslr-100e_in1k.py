# SdAE §3.1 (papers/sdae.md numbering): ImageNet-1k fine-tuning "directly
# following most of the hyper-parameters of MAE", 100 epochs (Table 2:
# 84.1 % after 300 pre-training epochs). --encoder teacher in the bridge
# fine-tunes the EMA teacher.
_base_ = './_base_/vit-base-p16_ft-100e_in1k.py'
model = dict(
    backbone=dict(
        init_cfg=dict(checkpoint='checkpoints/sdae_vit-base-p16_300e/'
                      'mmpretrain_backbone.pth')))
