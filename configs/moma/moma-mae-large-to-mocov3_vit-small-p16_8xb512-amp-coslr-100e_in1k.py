# MOMA "Large to Small" (paper Table 3: 80.8 % top-1). Frozen MAE ViT-L/16
# teacher; the student, MoCo v3's ViT-S/16 (12 layers, 12 heads, 384 dims;
# mmpretrain's 'mocov3-small', spelled out here because that arch name only
# exists once a MoCoV3ViT has been built), sees 10 % of the tokens of the
# original view; a linear projector maps 384 -> 1024 channels.
# Weights (tools/model_converters/*; the official files also load directly):
#   python tools/model_converters/mae_to_mmpretrain.py \
#       mae_pretrain_vit_large.pth \
#       checkpoints/mae_pretrain_vit_large_mmpretrain.pth
#   python tools/model_converters/mocov3_to_mmpretrain.py \
#       vit-s-300ep.pth.tar checkpoints/mocov3_vit-small-300ep_mmpretrain.pth
_base_ = [
    '../_base_/models/moma_vit-base-p16.py',
    '../_base_/datasets/imagenet_bs512_moma.py',
    '../_base_/schedules/moma_adamw_100e.py',
    '../_base_/default_runtime.py',
]
model = dict(
    backbone=dict(
        arch=dict(
            _delete_=True,  # replaces the base's arch='b'
            embed_dims=384,
            num_layers=12,
            num_heads=12,
            feedforward_channels=1536),
        init_cfg=dict(
            type='StrictPretrained',
            checkpoint='checkpoints/mocov3_vit-small-300ep_mmpretrain.pth',
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
