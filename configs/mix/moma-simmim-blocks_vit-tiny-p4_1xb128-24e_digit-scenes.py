# Mix (no paper has it): the MOMA "MAE to MoCo" demo whose student is masked
# with SimMIM's blocks (2 x 2 patches = 8 px cells, 75 % of the cells
# hidden: 16 of 64 patches visible) instead of MAE's random 90 % of the
# patches. Only the mask generator changes; run_demo fills the checkpoints.
_base_ = ['../demo/moma-mae-to-mocov3_vit-tiny-p4_1xb128-24e_digit-scenes.py']
model = dict(
    mask_ratio=None,
    mask_generator=dict(type='BlockMask', mask_ratio=0.75, block_size=2))
