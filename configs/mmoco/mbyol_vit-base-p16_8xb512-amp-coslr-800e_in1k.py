# M-BYOL ViT-B/16, ImageNet-1k, 800 epochs (paper §4.2, Table 8;
# the paper reports no ImageNet-1k M-BYOL number).
# n = 8 online chunks, m = 1, LayerNorm heads, light augmentation.
# The n / m grid of §3.2-3.3 (Table 1-2, Fig. 4), e.g. n = 4, m = 2:
#   --cfg-options model.num_chunks=4 model.num_target_chunks=2
_base_ = [
    '../_base_/models/mbyol_vit-base-p16.py',
    '../_base_/datasets/imagenet_bs512_mmoco.py',
    '../_base_/schedules/mmoco_adamw_800e.py',
    '../_base_/default_runtime.py',
]
# TeacherEMAHook updates the momentum encoder after every iteration;
# ConcentrationMonitorHook logs the chunks' vMF concentration (paper §3.4,
# Fig. 6) as train/kappa_{rep,projector,predictor} every 50 iterations.
custom_hooks = [
    dict(type='RNGStateHook'),
    dict(type='TeacherEMAHook'),
    dict(type='ConcentrationMonitorHook', interval=50),
]
