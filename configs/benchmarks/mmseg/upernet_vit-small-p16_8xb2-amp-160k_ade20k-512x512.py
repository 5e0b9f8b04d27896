# The ViT-B/16 recipe with a ViT-S/16 as our ViT-S pre-training configs
# build it (MoCo v3's ViT-S: 384-d, 12 blocks, 12 heads; DeiT-S's 6 heads
# would load the same tensors but compute another function), e.g. MOMA
# Table 3's or MimCo's ViT-S. UPerHead keeps mmseg's default 512 channels.
# (No paper reports this row.)
_base_ = './upernet_vit-base-p16_8xb2-amp-160k_ade20k-512x512.py'

model = dict(
    backbone=dict(
        arch=dict(
            _delete_=True,
            embed_dims=384,
            num_layers=12,
            num_heads=12,
            feedforward_channels=1536),
        init_cfg=dict(
            checkpoint='checkpoints/vit-small-p16/mmseg_backbone_512px.pth')),
    neck=dict(embed_dim=384),
    decode_head=dict(in_channels=[384, 384, 384, 384], channels=512),
    auxiliary_head=dict(in_channels=384))
