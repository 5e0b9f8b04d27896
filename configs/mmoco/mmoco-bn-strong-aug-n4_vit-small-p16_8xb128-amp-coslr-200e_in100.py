# Table 1a, "M-MoCo" n = 4: 89.2 % fine-tune, 79.2 % linear. The §3 ablation
# setup of mmoco-bn-strong-aug_vit-small-p16_8xb128-amp-coslr-200e_in100 with
# n = 4 online chunks.
_base_ = ['./mmoco-bn-strong-aug_vit-small-p16_8xb128-amp-coslr-200e_in100.py']
model = dict(num_chunks=4)
