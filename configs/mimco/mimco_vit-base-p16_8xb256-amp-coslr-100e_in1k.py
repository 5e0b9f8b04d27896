# MimCo ViT-B/16, 100 epochs, MoCo v3 ViT-B/16 (300 ep) teacher (paper
# Table 1: 83.7 % fine-tune top-1).
_base_ = [
    '../_base_/models/mimco_vit-base-p16.py',
    '../_base_/datasets/imagenet_bs256_mimco.py',
    '../_base_/schedules/mimco_adamw_100e.py',
    '../_base_/default_runtime.py',
]

# TeacherEMAHook updates the momentum projectors after every iteration.
custom_hooks = [dict(type='RNGStateHook'), dict(type='TeacherEMAHook')]
