# M-BYOL with ViT-B/16 (paper §3): M-MoCo's model with BYOL's loss
# 2 - 2 q.k and a predictor without an output norm ("critical to remove the
# BN for the output fc of the predictor MLP", §3.1).
_base_ = ['./mmoco_vit-base-p16.py']
model = dict(
    type='MaskedBYOL',
    predictor=dict(with_last_norm=False))
