# Table 2a, "M-MoCo" m = 4: 87.5 % fine-tune, 68.1 % linear. The §3 ablation
# setup of mmoco-bn-strong-aug_vit-small-p16_8xb128-amp-coslr-200e_in100 with
# the full online view (n = 1) and m = 4 target chunks, whose keys are
# combined by their spherical mean (Eq. 4).
_base_ = ['./mmoco-bn-strong-aug_vit-small-p16_8xb128-amp-coslr-200e_in100.py']
model = dict(num_chunks=1, num_target_chunks=4)
