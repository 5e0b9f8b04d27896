# M-MoCo with MoCo v3's ViT-S/16 (the backbone of the paper's ImageNet-100
# ablations, §3.1 "We adopt ViT-S as our default backbone", and of Table 4's
# ViT-S rows): 384 wide, 12 blocks, 12 heads (MoCo v3's vits.py vit_small;
# mmpretrain's 'mocov3-small', spelled out for every VisionTransformer
# subclass). Everything else as mmoco_vit-base-p16.py: n = 8, m = 1,
# LayerNorm heads (§3.4).
_base_ = ['./mmoco_vit-base-p16.py']
vit_small = dict(
    embed_dims=384, num_layers=12, num_heads=12, feedforward_channels=1536)
model = dict(backbone=dict(arch=dict(_delete_=True, **vit_small)))
