# The demo's n = 1 baseline of mmoco_vit-tiny-p4_1xb128-12e_digit-scenes.py:
# the same model, data and schedule with the online encoder on the full
# view (MoCo v3 with M-MoCo's LayerNorm heads and light augmentation; the
# paper's Table 1 "M-MoCo, n = 1" row). The vMF monitor needs n >= 2.
_base_ = ['./mmoco_vit-tiny-p4_1xb128-12e_digit-scenes.py']
model = dict(num_chunks=1)
custom_hooks = [dict(type='RNGStateHook'), dict(type='TeacherEMAHook')]
