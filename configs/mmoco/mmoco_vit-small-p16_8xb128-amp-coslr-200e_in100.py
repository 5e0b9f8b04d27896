# M-MoCo ViT-S/16 on ImageNet-100, 200 epochs: the ablation recipe of
# §3.1 with the paper's final choices (n = 8, m = 1, LayerNorm heads, light
# augmentation; Fig. 3b / Table 1: 89.8 % fine-tune with BN heads).
# The ablations are --cfg-options of this config:
#   Table 1 / 2, Fig. 4 (n, m):  model.num_chunks=N model.num_target_chunks=M
#   MoCo v3 baseline (Table 1):  model.num_chunks=1
#       model.backbone.stop_grad_conv1=True
#       model.neck.norm_cfg.type=SyncBN model.predictor.norm_cfg.type=SyncBN
#       train_dataloader.dataset.pipeline.1.mode=strong
#   Table 4 (augmentation):      train_dataloader.dataset.pipeline.1.mode=
#                                strong | medium | light
_base_ = [
    '../_base_/models/mmoco_vit-base-p16.py',
    '../_base_/datasets/imagenet100_bs128_mmoco.py',
    '../_base_/schedules/mmoco_adamw_200e.py',
    '../_base_/default_runtime.py',
]
# MoCo v3's ViT-S (12 heads; mmpretrain's 'mocov3-small', spelled out
# for every VisionTransformer subclass)
vit_small = dict(
    embed_dims=384, num_layers=12, num_heads=12, feedforward_channels=1536)
model = dict(backbone=dict(arch=dict(_delete_=True, **vit_small)))
# TeacherEMAHook updates the momentum encoder after every iteration;
# ConcentrationMonitorHook logs the chunks' vMF concentration (paper §3.4,
# Fig. 6) as train/kappa_{rep,projector,predictor} every 50 iterations.
custom_hooks = [
    dict(type='RNGStateHook'),
    dict(type='TeacherEMAHook'),
    dict(type='ConcentrationMonitorHook', interval=50),
]
