# M-MoCo ViT-B/16 on ImageNet-1k, 300 epochs: Table 5, "M-MoCo (ours)" 300
# epochs, 83.6 % ImageNet fine-tune top-1. §4.2 / Table 8: batch 4096, AdamW
# betas (0.9, 0.95), lr 1.5e-4 x 4096 / 256, wd 0.1, 20 warm-up epochs,
# cosine, light augmentation; n = 8 online chunks, m = 1, LayerNorm heads
# (§3.5: "n = 8 and m = 1" as defaults; §3.4: LN). Fine-tune:
# configs/benchmarks/mmpretrain/
# vit-base-p16_mmoco-pre_8xb128-coslr-100e_in1k.py
_base_ = [
    '../_base_/models/mmoco_vit-base-p16.py',
    '../_base_/datasets/imagenet_bs512_mmoco.py',
    '../_base_/schedules/mmoco_adamw_300e.py',
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
