# Mix (no paper has it): M-MoCo whose online encoder sees a SimMIM block
# mask of its view (2 x 2 patch cells, half of them hidden) instead of 8
# shuffled chunks; the momentum encoder still sees the other view whole.
_base_ = ['../demo/mmoco_vit-tiny-p4_1xb128-12e_digit-scenes.py']
model = dict(
    num_chunks=None,
    mask_generator=dict(type='BlockMask', mask_ratio=0.5, block_size=2))
