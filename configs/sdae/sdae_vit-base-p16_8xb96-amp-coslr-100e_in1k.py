# SdAE ViT-B/16, 100 epochs (paper Table 2: 83.5 % fine-tune; the ablation
# schedule of §4). Official code: 20 warm-up epochs (0.2 x epochs), drop
# path 0.15, EMA momentum 0.9 -> 0.95 per epoch; the rest as the 300-epoch
# recipe.
_base_ = ['./sdae_vit-base-p16_8xb96-amp-coslr-300e_in1k.py']

max_epochs = 100
warmup_epochs = 20
model = dict(
    backbone=dict(drop_path_rate=0.15), base_momentum=0.9, end_momentum=0.95)
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
train_cfg = dict(max_epochs=max_epochs)
