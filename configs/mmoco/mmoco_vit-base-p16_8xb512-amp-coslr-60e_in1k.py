# M-MoCo ViT-B/16 on ImageNet-1k, 60 epochs, light augmentation: Table 4,
# ViT-B "Light Aug." ("ViT-B: pre-train and fine-tune 60 epochs"; the cell
# is illegible in our copy of the table, §4.1 gives it as 0.3 % above strong
# augmentation's 81.4 %: 81.7 %). The ImageNet-1k recipe of §4.2 / Table 8
# (batch 4096, AdamW, lr 1.5e-4 x 4096 / 256, wd 0.1), n = 8, m = 1,
# LayerNorm heads; warm-up 10 epochs (not given; our choice).
# Fine-tune: configs/benchmarks/mmpretrain/
# vit-base-p16_mmoco-pre_8xb128-coslr-60e_in1k.py.
_base_ = [
    '../_base_/models/mmoco_vit-base-p16.py',
    '../_base_/datasets/imagenet_bs512_mmoco.py',
    '../_base_/schedules/mmoco_adamw_60e.py',
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
