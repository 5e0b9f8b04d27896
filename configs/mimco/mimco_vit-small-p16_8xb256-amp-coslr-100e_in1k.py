# MimCo ViT-S/16, 100 epochs, MoCo v3 ViT-S/16 (300 ep) teacher (paper
# Table 1: 82.5 % fine-tune top-1). Student and teacher use MoCo v3's ViT-S
# (12 heads: mmpretrain's 'mocov3-small', spelled out because only
# MoCoV3ViT's arch table has that name). Teacher weights:
#   python tools/model_converters/mocov3_to_mmpretrain.py \
#       vit-s-300ep.pth.tar checkpoints/mocov3_vit-small-300ep_mmpretrain.pth
_base_ = [
    '../_base_/models/mimco_vit-base-p16.py',
    '../_base_/datasets/imagenet_bs256_mimco.py',
    '../_base_/schedules/mimco_adamw_100e.py',
    '../_base_/default_runtime.py',
]
vit_small = dict(
    embed_dims=384, num_layers=12, num_heads=12, feedforward_channels=1536)
# BatchNorm of the heads over the whole batch, as MoBY (its projector /
# predictor BNs are SyncBN); a one-process run reverts them to BN (mmengine's
# Runner.wrap_model: revert_sync_batchnorm).
syncbn_head = dict(norm_cfg=dict(type='SyncBN'))
model = dict(
    backbone=dict(arch=dict(_delete_=True, **vit_small)),
    teacher=dict(
        network=dict(arch=dict(_delete_=True, **vit_small)),
        checkpoint='checkpoints/mocov3_vit-small-300ep_mmpretrain.pth'),
    patch_projector=syncbn_head,
    patch_predictor=syncbn_head,
    image_projector=syncbn_head,
    image_predictor=syncbn_head)
# TeacherEMAHook updates the momentum projectors after every iteration.
custom_hooks = [dict(type='RNGStateHook'), dict(type='TeacherEMAHook')]
