# MOMA single teacher, "MAE to MoCo" (paper §3.3; Table 2 and Table 3 "Base
# to Base": 83.7 % top-1). Frozen MAE ViT-B/16 teacher; the student, a ViT-B
# initialised from MoCo v3, sees 10 % of the tokens of the original view (no
# strong augmentation: the MAE teacher was not trained with it, §3.3).
# Weights: see moma-mocov3-to-mae_*.py (tools/model_converters/*).
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
            checkpoint='checkpoints/mocov3_vit-base-300ep_mmpretrain.pth',
            prefix='backbone.')),
    teachers=dict(
        mae=dict(
            teacher=dict(
                dtype='bfloat16',  # frozen: bf16 weights, no per-step casts
                network=dict(
                    type='MaskedViT',
                    arch='b',
                    img_size=224,
                    patch_size=16,
                    out_type='raw',
                    final_norm=True),  # its final LayerNorm is N (Eq. 3)
                checkpoint='checkpoints/mae_pretrain_vit_base_mmpretrain.pth'),
            teacher_view=0,  # the whole original view (§3.3, Fig. 4)
            loss_weight=1.0,
            student_view=0,
            projector=dict(type='TokenProjector'))))
train_dataloader = dict(
    dataset=dict(pipeline={{_base_.original_view_pipeline}}))
