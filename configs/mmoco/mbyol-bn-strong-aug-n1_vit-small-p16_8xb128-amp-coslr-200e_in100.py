# Table 1b, "M-BYOL" n = 1 (= Table 2b, m = 1; BYOL with its patch embedding
# trained): 87.8 % fine-tune, 77.4 % linear. The §3 ablation setup of
# mbyol-bn-strong-aug_vit-small-p16_8xb128-amp-coslr-200e_in100 with n = 1
# online chunks.
_base_ = ['./mbyol-bn-strong-aug_vit-small-p16_8xb128-amp-coslr-200e_in100.py']
model = dict(num_chunks=1)
