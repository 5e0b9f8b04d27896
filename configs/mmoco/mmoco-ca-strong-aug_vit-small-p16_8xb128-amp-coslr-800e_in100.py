# Table 3, "LayerNorm + CA" (91.9 % fine-tune, 78.7 % linear): the LN run
# with two class-attention blocks between the backbone and the projector
# (§3.4: "we insert two cross-attention blocks between ViT backbone and the
# projector ... we keep CLS and thus make the backbone intact"; CaiT blocks,
# Touvron et al. 2021), 12 heads and MLP ratio 4 as the backbone's blocks.
_base_ = './mmoco-strong-aug_vit-small-p16_8xb128-amp-coslr-800e_in100.py'
model = dict(
    cross_attention=dict(
        type='ClassAttentionBlocks', num_heads=12, num_blocks=2))
