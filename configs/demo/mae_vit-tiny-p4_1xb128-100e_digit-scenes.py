# mmpretrain's own MAE (stage-1 teacher for MOMA) as a tiny CPU demo on the
# digit scenes. Model: mmpretrain's MAE base config with the arch shrunk.
_base_ = [
    'mmpretrain::_base_/models/mae_vit-base-p16.py',
    '../_base_/datasets/digit_scenes_mim.py',
    '../_base_/datasets/digit_scenes_knn.py',
    '../_base_/schedules/digit_scenes_mim_100e.py',
    '../_base_/default_runtime.py',
]
# Tiny ViT for the CPU demo: 32 px images, 4 px patches (8 x 8 = 64 tokens).
arch = dict(
    embed_dims=128, num_layers=4, num_heads=4, feedforward_channels=512)
img_size = 32
patch_size = 4

model = dict(
    backbone=dict(
        arch=dict(_delete_=True, **arch),  # replaces the base's arch='b'
        img_size=img_size,
        patch_size=patch_size,
        mask_ratio=0.75),
    neck=dict(
        num_patches=(img_size // patch_size)**2,
        patch_size=patch_size,
        embed_dim=arch['embed_dims'],
        decoder_embed_dim=64,
        decoder_depth=2,
        decoder_num_heads=4),
    head=dict(patch_size=patch_size))

default_hooks = dict(checkpoint=dict(interval=50, max_keep_ckpts=1))
