# M-MoCo ViT-S/16 on ImageNet-100 with LayerNorm heads (§3.4: "we replace
# BN with Layer Normalization"), 800 epochs: Table 3, "LayerNorm" row
# (91.8 % fine-tune, 76.7 % linear). The same run as
# mmoco-bn-strong-aug_vit-small-p16_8xb128-amp-coslr-800e_in100.py (800
# epochs, strong augmentation: see there) with LN heads.
_base_ = [
    '../_base_/models/mmoco_vit-small-p16.py',
    '../_base_/datasets/imagenet100_bs128_strong-aug_mmoco.py',
    '../_base_/schedules/mmoco_adamw_800e_in100.py',
    '../_base_/default_runtime.py',
]
# TeacherEMAHook updates the momentum encoder after every iteration;
# ConcentrationMonitorHook logs the chunks' vMF concentration (paper §3.4,
# Fig. 6) as train/kappa_{rep,projector,predictor} every 50 iterations (and
# skips, with a log line, the n = 1 rows).
custom_hooks = [
    dict(type='RNGStateHook'),
    dict(type='TeacherEMAHook'),
    dict(type='ConcentrationMonitorHook', interval=50),
]
