# SdAE ViT-B/16, 300 epochs (paper Table 2: 84.1 % fine-tune, 64.9 % linear).
# Recipe from the official code (main_pretrain.py defaults): 8 GPUs x 96
# images, AdamW betas (0.9, 0.95), weight decay 0.04 (none on 1-D
# parameters: biases and norms), lr = blr 2.666e-4 x batch / 256,
# 60 warm-up epochs then cosine, drop path 0.25, EMA momentum 0.96 -> 0.99
# once per epoch; RandomResizedCrop(224, 0.2-1, bicubic) + flip, teacher and
# student on the same crop.
_base_ = [
    '../_base_/models/sdae_vit-base-p16.py',
    '../_base_/datasets/imagenet_bs96_sdae.py',
    '../_base_/default_runtime.py',
]

max_epochs = 300
warmup_epochs = 60
# linear scaling with the total batch (8 x 96 = 768)
optim_wrapper = dict(
    # bf16 autocast on GPUs that have it (no loss scaler), fp16 + dynamic loss
    # scaling on older GPUs, fp32 on the CPU (mmmoma.engine.optimizers)
    type='AutoAmpOptimWrapper',
    dtype='bfloat16',
    optimizer=dict(
        type='AdamW',
        fused=True,  # one kernel for all parameters (same update)
        lr=2.666e-4 * 768 / 256, betas=(0.9, 0.95),
        weight_decay=0.04),
    # official main_pretrain.py: timm's add_weight_decay(model, 0.04), no
    # skip list: no decay on every 1-D parameter (biases, every norm incl.
    # ln1 / ln2), decay on the rest, CLS and mask tokens included (the
    # sin-cos pos_embed is frozen); weight_decay_end is parsed but unused
    paramwise_cfg=dict(flat_decay_mult=0.0))
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-4,
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
        convert_to_iter_based=True)
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs)
default_hooks = dict(
    checkpoint=dict(
        type='AtomicCheckpointHook', interval=1, max_keep_ckpts=3))
# TeacherEMAHook updates the EMA teacher (after every epoch here); it runs
# before the CheckpointHook so checkpoints hold the updated teacher.
custom_hooks = [dict(type='RNGStateHook'), dict(type='TeacherEMAHook')]
auto_scale_lr = dict(base_batch_size=768)
