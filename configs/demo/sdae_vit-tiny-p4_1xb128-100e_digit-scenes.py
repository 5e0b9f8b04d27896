# SdAE (multi-fold masking, EMA teacher) as a tiny CPU demo on the digit
# scenes: the same tiny ViT, data, optimiser and 100-epoch schedule as the
# MAE demo (mae_vit-tiny-p4_1xb128-100e_digit-scenes.py), so the two rows
# differ only in the target (EMA-teacher features vs pixels).
_base_ = [
    '../_base_/models/sdae_vit-base-p16.py',
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
        drop_path_rate=0.0),  # as the MAE demo
    neck=dict(
        num_patches=(img_size // patch_size)**2,
        patch_size=patch_size,
        decoder_embed_dim=64,
        decoder_depth=2,
        decoder_num_heads=4),
    # 48 masked tokens in 3 folds of 16 = the 16 visible tokens (the paper's
    # best fold size, §4.3); our 100-epoch momentum (see configs/sdae).
    mask_ratio=0.75,
    num_folds=3,
    base_momentum=0.9,
    end_momentum=0.95)

default_hooks = dict(checkpoint=dict(interval=10, max_keep_ckpts=1))
custom_hooks = [dict(type='RNGStateHook'), dict(type='TeacherEMAHook')]
