# Table 1a, "M-MoCo" n = 1 (= Table 2a, m = 1; MoCo with its patch embedding
# trained): 88.2 % fine-tune, 78.7 % linear. The §3 ablation setup of
# mmoco-bn-strong-aug_vit-small-p16_8xb128-amp-coslr-200e_in100 with n = 1
# online chunks.
_base_ = ['./mmoco-bn-strong-aug_vit-small-p16_8xb128-amp-coslr-200e_in100.py']
model = dict(num_chunks=1)
