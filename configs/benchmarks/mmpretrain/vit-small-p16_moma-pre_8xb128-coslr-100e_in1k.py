# MOMA Table 3 "Large to Small" (80.8 %) / "Base to Small" (78.6 %): the
# ViT-S/16 student fine-tuned with MOMA's one recipe (§4.1, see the ViT-B
# config). The student is MoCo v3's ViT-S (384-d, 12 heads), as in
# configs/moma/moma-mae-large-to-mocov3_vit-small-p16_*.py. The paper names
# no layer decay for ViT-S: the ViT-B config's 0.65 is kept.
_base_ = './vit-base-p16_moma-pre_8xb128-coslr-100e_in1k.py'
vit_small = dict(
    embed_dims=384, num_layers=12, num_heads=12, feedforward_channels=1536)
model = dict(
    backbone=dict(
        arch=dict(_delete_=True, **vit_small),
        init_cfg=dict(checkpoint='checkpoints/moma-mae-large-to-mocov3_'
                      'vit-small-p16/mmpretrain_backbone.pth')),
    head=dict(in_channels=vit_small['embed_dims']))
