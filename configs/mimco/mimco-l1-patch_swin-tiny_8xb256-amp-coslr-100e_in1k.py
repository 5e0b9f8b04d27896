# Ablation (paper Table 7: 81.35 % vs 81.55 % for the contrastive patch
# loss): the patch-level target reconstructed with an l1 loss instead of
# InfoNCE. p2(p1(z)) predicts the teacher's feature map at the masked
# patches (MaskFeat-style: no momentum projector, no patch queue); the
# image-level loss is unchanged.
# Teacher weights: MoBY's public Swin-T release, converted with
#   python tools/model_converters/moby_to_mmpretrain.py \
#       moby_swin_t_300ep_pretrained.pth \
#       checkpoints/moby_swin-tiny-300ep_mmpretrain.pth
_base_ = [
    '../_base_/models/mimco_swin-base.py',
    '../_base_/datasets/imagenet_bs256_mimco.py',
    '../_base_/schedules/mimco_adamw_100e.py',
    '../_base_/default_runtime.py',
]
model = dict(
    backbone=dict(arch='tiny'),
    teacher=dict(
        network=dict(arch='tiny'),
        checkpoint='checkpoints/moby_swin-tiny-300ep_mmpretrain.pth'),
    patch_loss='l1')
# TeacherEMAHook updates the momentum projectors after every iteration.
custom_hooks = [dict(type='RNGStateHook'), dict(type='TeacherEMAHook')]
