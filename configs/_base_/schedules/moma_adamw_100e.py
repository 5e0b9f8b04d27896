# MOMA pre-training schedule (paper §4.1 "Pre-training"): AdamW, lr 1.5e-4,
# betas (0.9, 0.95), weight decay 0.05, 100 epochs with 20 warm-up epochs,
# cosine annealing, batch 4096 (8 GPUs x 512, §4.1 "Batch Size"), mixed
# precision as in mmpretrain's MAE recipes.
# §4.1 gives "a learning rate of 1.5e-4" "following the setup in MoCo v3 and
# MAE"; both define 1.5e-4 as a *base* lr scaled by batch / 256 (MAE's blr,
# MoCo v3's main_moco.py `args.lr * args.batch_size / 256`), so the lr at
# batch 4096 is 1.5e-4 x 4096 / 256 = 2.4e-3. The literal reading, 16x lower:
#   optim_wrapper = dict(optimizer=dict(lr=1.5e-4))
max_epochs = 100
warmup_epochs = 20
optim_wrapper = dict(
    # bf16 autocast on GPUs that have it (no loss scaler), fp16 + dynamic loss
    # scaling on older GPUs, fp32 on the CPU (mmmoma.engine.optimizers)
    type='AutoAmpOptimWrapper',
    dtype='bfloat16',
    optimizer=dict(
        type='AdamW',
        fused=True,  # one kernel for all parameters (same update)
        lr=1.5e-4 * 4096 / 256,  # base lr 1.5e-4 x batch / 256 (see above)
        betas=(0.9, 0.95),
        weight_decay=0.05),
    paramwise_cfg=dict(
        custom_keys={
            'ln': dict(decay_mult=0.0),
            'bias': dict(decay_mult=0.0),
            'pos_embed': dict(decay_mult=0.),
            'cls_token': dict(decay_mult=0.)
        }))
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
        convert_to_iter_based=True),
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs)
# The lr above is for 8 x 512 = 4096; --auto-scale-lr rescales it linearly
# (MAE / MoCo v3's rule) to other total batch sizes.
auto_scale_lr = dict(base_batch_size=4096)
