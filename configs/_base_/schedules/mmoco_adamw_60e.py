# M-MoCo pre-training schedule of the ImageNet-1k augmentation study
# (Table 4: ViT-S "pre-train and fine-tune 100 epochs", ViT-B "60 epochs"):
# 60 epochs. Otherwise the ImageNet-1k recipe (§4.2, Table 8): batch 4096,
# AdamW, betas (0.9, 0.95), lr = 1.5e-4 x batch / 256, wd 0.1, cosine.
# The paper gives no warm-up for these short runs: 10 epochs, MoCo v3's
# main_moco.py default (--warmup-epochs 10); our choice.
_base_ = ['./mmoco_adamw_300e.py']
max_epochs = 60
warmup_epochs = 10
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
