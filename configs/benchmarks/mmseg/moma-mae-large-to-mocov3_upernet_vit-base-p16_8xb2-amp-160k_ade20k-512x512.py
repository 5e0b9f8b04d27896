# MOMA Table 5 (§4.3): ViT-L MAE teacher -> ViT-B MoCo v3 student, which the
# paper first fine-tunes on ImageNet-1k, then trains on ADE20K 512 x 512 for
# 160k iterations, batch 16, wd 0.05, layer decay 0.65, lr 1e-4. Convert the
# *ImageNet-fine-tuned* classifier checkpoint
# (configs/benchmarks/mmpretrain/vit-base-p16_moma-*ft*; its fc_norm is
# dropped from the mmseg file) with pretrain_to_transfer.py.
_base_ = './upernet_vit-base-p16_8xb2-amp-160k_ade20k-512x512.py'

model = dict(
    backbone=dict(
        init_cfg=dict(checkpoint='checkpoints/moma-mae-large-to-mocov3_'
                      'vit-base-p16_in1k-ft/mmseg_backbone_512px.pth')))
