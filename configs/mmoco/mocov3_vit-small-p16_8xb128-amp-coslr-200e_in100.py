# Tables 1a / 2a, "MoCo-v3" (Frozen PE ticked, n = m = 1): 87.9 % fine-tune,
# 78.6 % linear. The re-implemented baseline: the §3 ablation setup of
# mmoco-bn-strong-aug_vit-small-p16_8xb128-amp-coslr-200e_in100 with the full
# view (n = m = 1) and MoCo v3's frozen patch embedding (stop_grad_conv1;
# Chen et al. 2021). The vMF monitor skips this run (one chunk).
_base_ = ['./mmoco-bn-strong-aug_vit-small-p16_8xb128-amp-coslr-200e_in100.py']
model = dict(num_chunks=1, backbone=dict(stop_grad_conv1=True))
