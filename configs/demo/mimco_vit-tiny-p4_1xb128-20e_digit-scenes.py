# MimCo (paper §3) as a tiny CPU demo on the digit scenes: the demo MoCo v3
# ViT (mocov3_vit-tiny-p4_1xb128-20e_digit-scenes.py) is the frozen
# contrastive teacher; the student, the same tiny ViT with a mask token, sees
# the SimMIM-masked image. The paper's geometry scaled to 32 px: mask patches
# of 8 px = 2 x 2 model patches (paper: 32 px on 16 px patches), 60 % masked.
# Optimiser as the MAE / SdAE demos (digit_scenes_mim_100e), 10 epochs with
# 1 warm-up epoch (the paper's 10 %); the paper's lighter crop (scale
# 0.67-1; no flip: digits are not mirror-symmetric). tools/run_demo.py fills
# in the teacher checkpoint:
#   --cfg-options model.teacher.checkpoint=MOCO_CKPT
_base_ = [
    '../_base_/models/mimco_vit-base-p16.py',
    '../_base_/datasets/digit_scenes_mim.py',
    '../_base_/datasets/digit_scenes_knn.py',
    '../_base_/schedules/digit_scenes_mim_100e.py',
    '../_base_/default_runtime.py',
]
# the demo MoCo v3's tiny ViT: 32 px images, 4 px patches (8 x 8 tokens)
arch = dict(
    embed_dims=128, num_layers=4, num_heads=4, feedforward_channels=512)
vit = dict(arch=dict(_delete_=True, **arch), img_size=32, patch_size=4)
model = dict(
    backbone=vit,
    # fp32 teacher on the CPU (the paper configs hold theirs in bf16)
    teacher=dict(network=vit, checkpoint=None, dtype=None),
    mask_patch_size=8,
    # momentum projector 0.9 -> 1 (cosine): MoBY's 0.99 -> 1 over ~100
    # demo iterations kept ~60 % of its random initial weights
    base_momentum=0.9,
    patch_projector=dict(hidden_channels=512, out_channels=128),
    patch_predictor=dict(hidden_channels=512),
    image_projector=dict(hid_channels=512, out_channels=128),
    image_predictor=dict(hid_channels=512),
    # 8 batches of keys (the paper: 4096 = 2 batches of 2048)
    patch_queue_length=1024,
    image_queue_length=1024)
train_dataloader = dict(
    drop_last=True,  # every step enqueues one full batch of keys
    dataset=dict(pipeline=[
        dict(type='LoadImageFromFile'),
        dict(
            type='RandomResizedCrop',
            scale=32,
            crop_ratio_range=(0.67, 1.0),
            aspect_ratio_range=(3. / 4., 4. / 3.),
            backend='pillow',
            interpolation='bicubic'),
        dict(type='PackInputs'),
    ]))

max_epochs = 20  # demo budget raised for issue 17 (the
# fine-tune column it paid for is now opt-in, see tools/run_demo.py)
warmup_epochs = 1
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-3,
        by_epoch=True,
        begin=0,
        end=warmup_epochs,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        T_max=max_epochs - warmup_epochs,
        by_epoch=True,
        begin=warmup_epochs,
        end=max_epochs,
        convert_to_iter_based=True),
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs)
default_hooks = dict(checkpoint=dict(interval=max_epochs, max_keep_ckpts=1))
custom_hooks = [dict(type='RNGStateHook'), dict(type='TeacherEMAHook')]
