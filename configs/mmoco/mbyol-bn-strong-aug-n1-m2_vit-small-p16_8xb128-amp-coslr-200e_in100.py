# Table 2b, "M-BYOL" m = 2: 87.1 % fine-tune, 73.6 % linear. The §3 ablation
# setup of mbyol-bn-strong-aug_vit-small-p16_8xb128-amp-coslr-200e_in100 with
# the full online view (n = 1) and m = 2 target chunks, whose keys are
# combined by their spherical mean (Eq. 4).
_base_ = ['./mbyol-bn-strong-aug_vit-small-p16_8xb128-amp-coslr-200e_in100.py']
model = dict(num_chunks=1, num_target_chunks=2)
