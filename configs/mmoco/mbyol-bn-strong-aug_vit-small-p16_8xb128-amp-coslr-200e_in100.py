# M-BYOL in the §3 ablation setup (ViT-S/16, ImageNet-100, BN heads, strong
# augmentation, 200 epochs, n = 8, m = 1): M-MoCo's model with BYOL's loss
# 2 - 2 q.k (Eq. 2) and a predictor without its output BN ("For BYOL, we
# found it critical to remove the BN for the output fc of the predictor
# MLP", §3.1). Table 1b, "M-BYOL" n = 8: 89.7 % fine-tune, 75.4 % linear.
_base_ = './mmoco-bn-strong-aug_vit-small-p16_8xb128-amp-coslr-200e_in100.py'
model = dict(type='MaskedBYOL', predictor=dict(with_last_norm=False))
