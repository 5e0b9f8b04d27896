# Ablation (paper Table 8, second row: 81.59 %): only the image-level loss.
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
# BatchNorm of the heads over the whole batch, as MoBY (its projector /
# predictor BNs are SyncBN); a one-process run reverts them to BN (mmengine's
# Runner.wrap_model: revert_sync_batchnorm).
syncbn_head = dict(norm_cfg=dict(type='SyncBN'))
model = dict(
    backbone=dict(arch='tiny'),
    teacher=dict(
        network=dict(arch='tiny'),
        checkpoint='checkpoints/moby_swin-tiny-300ep_mmpretrain.pth'),
    patch_loss_weight=0.0,
    patch_projector=syncbn_head,
    patch_predictor=syncbn_head,
    image_projector=syncbn_head,
    image_predictor=syncbn_head)
# TeacherEMAHook updates the momentum projectors after every iteration.
custom_hooks = [dict(type='RNGStateHook'), dict(type='TeacherEMAHook')]
