# The ViT-B/16 recipe with a ViT-L/16 (1024-d, 24 blocks; maps after blocks
# 8, 12, 16, 24 as BEiT-L), e.g. a MOMA ViT-L teacher / student. The MAE
# paper's ViT-L recipe is not public; the B recipe (layer decay 0.65,
# lr 1e-4) is kept. (No paper of ours reports this row.)
_base_ = './upernet_vit-base-p16_8xb2-amp-160k_ade20k-512x512.py'

model = dict(
    backbone=dict(
        arch='l',
        out_indices=[7, 11, 15, 23],
        init_cfg=dict(
            checkpoint='checkpoints/vit-large-p16/mmseg_backbone_512px.pth')),
    neck=dict(embed_dim=1024),
    decode_head=dict(in_channels=[1024, 1024, 1024, 1024], channels=1024),
    auxiliary_head=dict(in_channels=1024))
