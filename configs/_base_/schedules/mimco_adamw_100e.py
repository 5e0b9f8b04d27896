# MimCo pre-training schedule (paper §3.3): AdamW, batch 2048 (8 x 256),
# lr = 1e-3 x batch / 512, weight decay 0.05, linear warm-up for 10 epochs
# then cosine, 100 epochs. The paper gives no betas: AdamW's default
# (0.9, 0.999), as SimMIM. No decay on norms, biases, position embeddings,
# CLS / mask tokens or Swin's relative position tables (the usual choice).
max_epochs = 100
warmup_epochs = 10
optim_wrapper = dict(
    # bf16 autocast on GPUs that have it (no loss scaler), fp16 + dynamic loss
    # scaling on older GPUs, fp32 on the CPU (mmmoma.engine.optimizers)
    type='AutoAmpOptimWrapper',
    dtype='bfloat16',
    optimizer=dict(
        type='AdamW',
        fused=True,  # one kernel for all parameters (same update)
        lr=1e-3 * 2048 / 512, betas=(0.9, 0.999),
        weight_decay=0.05),
    paramwise_cfg=dict(
        norm_decay_mult=0.0,
        bias_decay_mult=0.0,
        custom_keys={
            'pos_embed': dict(decay_mult=0.),
            'mask_token': dict(decay_mult=0.),
            'cls_token': dict(decay_mult=0.),
            'relative_position_bias_table': dict(decay_mult=0.)
        }))
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
        convert_to_iter_based=True)
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs)
# the paper's rule lr = 1e-3 x batch / 512 is linear scaling, which
# --auto-scale-lr applies for other total batch sizes
auto_scale_lr = dict(base_batch_size=2048)
