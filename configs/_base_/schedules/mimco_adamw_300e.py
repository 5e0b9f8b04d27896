# MimCo's 300-epoch schedule (paper Table 1): the 100-epoch recipe with the
# cosine stretched to 300 epochs (same 10 warm-up epochs).
_base_ = ['./mimco_adamw_100e.py']
max_epochs = 300
warmup_epochs = 10
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
