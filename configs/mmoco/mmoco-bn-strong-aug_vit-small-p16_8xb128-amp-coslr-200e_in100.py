# M-MoCo ViT-S/16 on ImageNet-100, 200 epochs, in the setup of the paper's
# §3.1-3.3 ablations (Tables 1-2, Figs. 3-4): MoCo v3's BatchNorm heads
# (§3.4: "MoCo-v3 uses BN, so M-MoCo naturally inherits this design in
# previous sections") and MoCo v3's strong augmentation (§3.1: "our default
# setup follows MoCo-v3"; light augmentation comes only in §4.1). n = 8
# online chunks, m = 1, patch embedding trained, batch 1024, 200 epochs
# (Table 1: "Numbers are for 200 epochs of pre-training").
# Table 1a, "M-MoCo" n = 8: 89.8 % fine-tune, 75.7 % linear (Fig. 3b).
# The other rows of Tables 1-2 and Fig. 4 inherit from this config
# (configs/mmoco/README.md lists them).
_base_ = [
    '../_base_/models/mmoco_vit-small-p16_bn-heads.py',
    '../_base_/datasets/imagenet100_bs128_strong-aug_mmoco.py',
    '../_base_/schedules/mmoco_adamw_200e.py',
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
