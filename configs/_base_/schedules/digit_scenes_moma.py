# MOMA demo optimizer: the paper's AdamW (betas 0.9, 0.95, wd 0.05; §4.1),
# lr raised for batch 128 on a tiny ViT. The demo configs add 20 % warm-up
# and cosine decay (param_scheduler) for their own number of epochs.
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW', lr=1e-3, betas=(0.9, 0.95), weight_decay=0.05),
    paramwise_cfg=dict(
        custom_keys={
            'ln': dict(decay_mult=0.0),
            'bias': dict(decay_mult=0.0),
            'pos_embed': dict(decay_mult=0.),
            'cls_token': dict(decay_mult=0.)
        }))
