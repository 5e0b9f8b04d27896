# Table 1a, "M-MoCo" n = 2: 89.1 % fine-tune, 79.4 % linear. The §3 ablation
# setup of mmoco-bn-strong-aug_vit-small-p16_8xb128-amp-coslr-200e_in100 with
# n = 2 online chunks.
_base_ = ['./mmoco-bn-strong-aug_vit-small-p16_8xb128-amp-coslr-200e_in100.py']
model = dict(num_chunks=2)
