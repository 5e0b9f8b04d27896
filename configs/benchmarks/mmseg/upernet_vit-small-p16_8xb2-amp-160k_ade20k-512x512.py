# The ViT-B/16 recipe with a ViT-S/16 (DeiT-S: 384-d, 12 blocks, 6 heads),
# e.g. the ViT-S students of MOMA Table 3 or MimCo's ViT-S. UPerHead keeps
# mmseg's default 512 channels. (No paper reports this row.)
_base_ = './upernet_vit-base-p16_8xb2-amp-160k_ade20k-512x512.py'

model = dict(
    backbone=dict(
        arch='deit-small',
        init_cfg=dict(
            checkpoint='checkpoints/vit-small-p16/mmseg_backbone_512px.pth')),
    neck=dict(embed_dim=384),
    decode_head=dict(in_channels=[384, 384, 384, 384], channels=512),
    auxiliary_head=dict(in_channels=384))
