# MimCo Swin-B, 100 epochs, MoBY Swin-B (300 ep) teacher (paper Table 1:
# 84.0 % fine-tune top-1).
_base_ = [
    '../_base_/models/mimco_swin-base.py',
    '../_base_/datasets/imagenet_bs256_mimco.py',
    '../_base_/schedules/mimco_adamw_100e.py',
    '../_base_/default_runtime.py',
]

# TeacherEMAHook updates the momentum projectors after every iteration.
custom_hooks = [dict(type='RNGStateHook'), dict(type='TeacherEMAHook')]
