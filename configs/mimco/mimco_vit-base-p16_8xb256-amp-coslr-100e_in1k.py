# MimCo ViT-B/16, 100 epochs, MoCo v3 ViT-B/16 (300 ep) teacher (paper
# Table 1: 83.7 % fine-tune top-1).
_base_ = [
    '../_base_/models/mimco_vit-base-p16.py',
    '../_base_/datasets/imagenet_bs256_mimco.py',
    '../_base_/schedules/mimco_adamw_100e.py',
    '../_base_/default_runtime.py',
]
# BatchNorm of the heads over the whole batch, as MoBY (its projector /
# predictor BNs are SyncBN); a one-process run reverts them to BN (mmengine's
# Runner.wrap_model: revert_sync_batchnorm).
syncbn_head = dict(norm_cfg=dict(type='SyncBN'))
model = dict(
    patch_projector=syncbn_head,
    patch_predictor=syncbn_head,
    image_projector=syncbn_head,
    image_predictor=syncbn_head)
# TeacherEMAHook updates the momentum projectors after every iteration.
custom_hooks = [dict(type='RNGStateHook'), dict(type='TeacherEMAHook')]
