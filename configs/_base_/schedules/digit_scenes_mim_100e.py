# The demo schedule of the masked-image-modelling methods (MAE, SdAE):
# AdamW 1.5e-3, betas (0.9, 0.95), wd 0.05 (none on norms, biases, position /
# CLS / mask tokens), 10 linear warm-up epochs, cosine to 100 epochs
# (1,100 iterations of batch 128 on the 1,300 digit scenes: MAE at 440
# iterations scored kNN 12.6 / linear 18.7 against random init 9.6 / 15.7;
# more iterations are the cheapest lever, and the MAE run is cached).
max_epochs = 100
warmup_epochs = 10
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW', lr=1.5e-3, betas=(0.9, 0.95), weight_decay=0.05),
    # flat_decay_mult: no decay on every 1-D parameter (all biases and
    # norms, ln1 included; MAE / SdAE official add_weight_decay)
    paramwise_cfg=dict(
        flat_decay_mult=0.0,
        custom_keys=dict(
            pos_embed=dict(decay_mult=0.),
            mask_token=dict(decay_mult=0.),
            cls_token=dict(decay_mult=0.))))
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
