# Table 2b, "M-BYOL" m = 8: 84.9 % fine-tune, 62.3 % linear. The §3 ablation
# setup of mbyol-bn-strong-aug_vit-small-p16_8xb128-amp-coslr-200e_in100 with
# the full online view (n = 1) and m = 8 target chunks, whose keys are
# combined by their spherical mean (Eq. 4).
_base_ = ['./mbyol-bn-strong-aug_vit-small-p16_8xb128-amp-coslr-200e_in100.py']
model = dict(num_chunks=1, num_target_chunks=8)
