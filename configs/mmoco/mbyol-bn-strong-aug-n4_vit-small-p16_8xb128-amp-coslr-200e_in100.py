# Table 1b, "M-BYOL" n = 4: 89.4 % fine-tune, 78.3 % linear. The §3 ablation
# setup of mbyol-bn-strong-aug_vit-small-p16_8xb128-amp-coslr-200e_in100 with
# n = 4 online chunks.
_base_ = ['./mbyol-bn-strong-aug_vit-small-p16_8xb128-amp-coslr-200e_in100.py']
model = dict(num_chunks=4)
