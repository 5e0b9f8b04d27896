# MOMA single teacher, "MoCo to MAE" (paper §3.3; Table 2: 84.0 % top-1).
# Frozen MoCo v3 ViT-B/16 teacher on the original view; the student, a ViT-B
# initialised from MAE, sees 10 % of the tokens of the strong view of the
# same crop (§3.3: "feed in strong augmented samples into the student").
# Teacher / student weights: official releases converted with
#   python tools/model_converters/mocov3_to_mmpretrain.py \
#       vit-b-300ep.pth.tar checkpoints/mocov3_vit-base-300ep_mmpretrain.pth
#   python tools/model_converters/mae_to_mmpretrain.py \
#       mae_pretrain_vit_base.pth \
#       checkpoints/mae_pretrain_vit_base_mmpretrain.pth
# (the official files also load directly: point the paths at them).
_base_ = [
    '../_base_/models/moma_vit-base-p16.py',
    '../_base_/datasets/imagenet_bs512_moma.py',
    '../_base_/schedules/moma_adamw_100e.py',
    '../_base_/default_runtime.py',
]
model = dict(
    backbone=dict(
        init_cfg=dict(
            type='StrictPretrained',
            checkpoint='checkpoints/mae_pretrain_vit_base_mmpretrain.pth',
            prefix='backbone.')),
    teachers=dict(
        moco=dict(
            teacher=dict(
                dtype='bfloat16',  # frozen: bf16 weights, no per-step casts
                network=dict(
                    type='MaskedViT',
                    arch='b',
                    img_size=224,
                    patch_size=16,
                    out_type='raw',
                    final_norm=True),  # its final LayerNorm is N (Eq. 3)
                checkpoint='checkpoints/mocov3_vit-base-300ep_mmpretrain.pth'),
            teacher_view=0,  # the whole original view (§3.3, Fig. 4)
            loss_weight=1.0,
            student_view=1,  # the strong view
            projector=dict(type='TokenProjector'))))
