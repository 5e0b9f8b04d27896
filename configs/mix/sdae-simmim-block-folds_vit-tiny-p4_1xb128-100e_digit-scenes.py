# Mix (no paper has it): SdAE whose student is masked with SimMIM's blocks
# (2 x 2 patches, 75 % of the cells) and whose EMA teacher sees the masked
# blocks in 3 folds of 4 random blocks each (multi-fold masking over blocks).
_base_ = ['../demo/sdae_vit-tiny-p4_1xb128-100e_digit-scenes.py']
model = dict(
    mask_ratio=None,
    teacher_input=None,
    num_folds=None,
    mask_generator=dict(
        type='MultiFoldSplit',
        num_folds=3,
        base=dict(type='BlockMask', mask_ratio=0.75, block_size=2)))
