# MOMA "Large to Base" (paper Table 3 and Table 1: the 84.2 % headline).
# Frozen MAE ViT-L/16 teacher; the student, a ViT-B initialised from MoCo v3,
# sees 10 % of the tokens of the original view; a linear projector maps the
# student's 768 channels to the teacher's 1024.
# Weights (tools/model_converters/*; the official files also load directly):
#   python tools/model_converters/mae_to_mmpretrain.py \
#       mae_pretrain_vit_large.pth \
#       checkpoints/mae_pretrain_vit_large_mmpretrain.pth
#   python tools/model_converters/mocov3_to_mmpretrain.py \
#       vit-b-300ep.pth.tar checkpoints/mocov3_vit-base-300ep_mmpretrain.pth
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
                network=dict(
                    type='MaskedViT',
                    arch='l',
                    img_size=224,
                    patch_size=16,
                    out_type='raw',
                    final_norm=True),  # its final LayerNorm is N (Eq. 3)
                checkpoint='checkpoints/mae_pretrain_vit_large_mmpretrain.pth'
            ),
            loss_weight=1.0,
            student_view=0,
            projector=dict(type='TokenProjector'))))
train_dataloader = dict(
    dataset=dict(pipeline={{_base_.original_view_pipeline}}))
