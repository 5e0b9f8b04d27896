# MOMA multiple teachers (paper §3.4, Eq. 4 with α = β = 1, the paper's
# averaging) on the digit scenes: the demo MAE (original view) and MoCo v3
# (strong view) ViTs as frozen teachers, a randomly initialised student.
# tools/run_demo.py fills in the teacher checkpoints:
#   --cfg-options model.teachers.mae.teacher.checkpoint=MAE_CKPT \
#                 model.teachers.moco.teacher.checkpoint=MOCO_CKPT
_base_ = [
    '../_base_/models/moma_vit-tiny-p4.py',
    '../_base_/datasets/digit_scenes_pretrain.py',
    '../_base_/datasets/digit_scenes_moma.py',
    '../_base_/datasets/digit_scenes_knn.py',
    '../_base_/schedules/digit_scenes_moma.py',
    '../_base_/default_runtime.py',
]
model = dict(
    teachers=dict(
        mae=dict(
            teacher=dict(network={{_base_.tiny_vit}}, checkpoint=None),
            loss_weight=1.0,  # α
            student_view=0),
        moco=dict(
            teacher=dict(network={{_base_.tiny_vit}}, checkpoint=None),
            loss_weight=1.0,  # β
            student_view=1)))
train_dataloader = dict(dataset=dict(pipeline={{_base_.two_view_pipeline}}))

# Budget: 44 iterations, ~100 s on 2 shared CPU cores (each step runs two
# full-image teacher forwards, twice the single-teacher cost).
max_epochs = 12  # demo budget raised for issue 17 (the
# fine-tune column it paid for is now opt-in, see tools/run_demo.py)
warmup_epochs = 2  # ~20 % warm-up, then cosine (paper §4.1)
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
