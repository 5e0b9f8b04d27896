# M-MoCo / M-BYOL pre-training schedule on ImageNet-1k (paper §4.2, Table 8):
# 800 epochs, 40 warm-up, batch 4096.
# AdamW, betas (0.9, 0.95), lr = blr x batch / 256 with blr = 1.5e-4,
# weight decay 0.1 on every parameter (MoCo v3's official code decays all),
# linear warm-up then cosine decay per iteration.
max_epochs = 800
warmup_epochs = 40
batch_size = 4096
optim_wrapper = dict(
    # bf16 autocast on GPUs that have it (no loss scaler), fp16 + dynamic loss
    # scaling on older GPUs, fp32 on the CPU (mmmoma.engine.optimizers)
    type='AutoAmpOptimWrapper',
    dtype='bfloat16',
    optimizer=dict(
        type='AdamW',
        fused=True,  # one kernel for all parameters (same update)
        lr=1.5e-4 * batch_size / 256,
        betas=(0.9, 0.95),
        weight_decay=0.1))
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
# lr = blr x batch / 256 is linear scaling, which --auto-scale-lr applies
# for other total batch sizes
auto_scale_lr = dict(base_batch_size=batch_size)
