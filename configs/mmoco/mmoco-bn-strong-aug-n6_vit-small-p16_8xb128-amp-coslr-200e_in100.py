# Table 1a, "M-MoCo" n = 6: 89.6 % fine-tune, 77.3 % linear. The §3 ablation
# setup of mmoco-bn-strong-aug_vit-small-p16_8xb128-amp-coslr-200e_in100 with
# n = 6 online chunks.
_base_ = ['./mmoco-bn-strong-aug_vit-small-p16_8xb128-amp-coslr-200e_in100.py']
model = dict(num_chunks=6)
