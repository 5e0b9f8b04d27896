# MOMA multiple teachers (paper §3.4, Eq. 4; Table 2 "Multi": 83.4 % top-1).
# Frozen MAE and MoCo v3 ViT-B/16 teachers; a randomly initialised ViT-B
# student. The MAE teacher is aligned with the masked original view, the MoCo
# teacher with the masked strong view of the same crop (§3.4: "strong
# augmented samples, and masked samples"). α = β = 1: the paper "averages the
# alignment loss from both teachers" (§4.2); the overall factor 1/2 is left
# to the learning rate. teacher_weighting='uncertainty' learns them instead.
# One projector P for both teachers, as Eq. 4 writes it (both are 768-d);
# shared_projector=False gives each teacher its own.
# Weights: see moma-mocov3-to-mae_*.py (tools/model_converters/*).
_base_ = [
    '../_base_/models/moma_vit-base-p16.py',
    '../_base_/datasets/imagenet_bs512_moma.py',
    '../_base_/schedules/moma_adamw_100e.py',
    '../_base_/default_runtime.py',
]
vit_base_teacher = dict(
    type='MaskedViT',
    arch='b',
    img_size=224,
    patch_size=16,
    out_type='raw',
    final_norm=True)  # its final LayerNorm is N (Eq. 3)
model = dict(
    backbone=dict(init_cfg=None),  # random initialisation (§3.2 "Student")
    shared_projector=True,  # Eq. 4: one P
    teachers=dict(
        mae=dict(
            teacher=dict(
                dtype='bfloat16',  # frozen: bf16 weights, no per-step casts
                network=vit_base_teacher,
                checkpoint='checkpoints/mae_pretrain_vit_base_mmpretrain.pth'),
            teacher_view=0,  # the whole original view (§3.3, Fig. 4)
            loss_weight=1.0,  # α
            student_view=0,
            projector=dict(type='TokenProjector')),
        moco=dict(
            teacher=dict(
                dtype='bfloat16',  # frozen: bf16 weights, no per-step casts
                network=vit_base_teacher,
                checkpoint='checkpoints/mocov3_vit-base-300ep_mmpretrain.pth'),
            teacher_view=0,  # the whole original view (§3.3, Fig. 4)
            loss_weight=1.0,  # β
            student_view=1,
            projector=dict(type='TokenProjector'))))
