# MOMA "MoCo to MAE" (paper §3.3) on the digit scenes: the demo MoCo v3 ViT
# as frozen teacher, the student initialised from the demo MAE and fed the
# masked strong view. tools/run_demo.py fills in the two checkpoints:
#   --cfg-options model.teachers.moco.teacher.checkpoint=MOCO_CKPT \
#                 model.backbone.init_cfg.checkpoint=MAE_CKPT
_base_ = [
    '../_base_/models/moma_vit-tiny-p4.py',
    '../_base_/datasets/digit_scenes_pretrain.py',
    '../_base_/datasets/digit_scenes_moma.py',
    '../_base_/datasets/digit_scenes_knn.py',
    '../_base_/schedules/digit_scenes_moma.py',
    '../_base_/default_runtime.py',
]
model = dict(
    backbone=dict(
        init_cfg=dict(
            type='StrictPretrained', checkpoint=None, prefix='backbone.')),
    teachers=dict(
        moco=dict(
            teacher=dict(network={{_base_.tiny_vit}}, checkpoint=None),
            student_view=1)))
train_dataloader = dict(dataset=dict(pipeline={{_base_.two_view_pipeline}}))

# Budget: 88 iterations, ~100 s on 2 shared CPU cores (measured; each step
# runs one full-image teacher forward, the student sees 6 tokens).
max_epochs = 24  # demo budget raised for issue 17 (the
# fine-tune column it paid for is now opt-in, see tools/run_demo.py)
warmup_epochs = 5  # ~20 % warm-up, then cosine (paper §4.1)
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
default_hooks = dict(checkpoint=dict(interval=max_epochs, max_keep_ckpts=1))
