# Tables 1b / 2b, "BYOL" (Frozen PE ticked, n = m = 1): 87.3 % fine-tune,
# 77.5 % linear. The re-implemented baseline: the §3 ablation setup of
# mbyol-bn-strong-aug_vit-small-p16_8xb128-amp-coslr-200e_in100 with the full
# view (n = m = 1) and MoCo v3's frozen patch embedding (stop_grad_conv1;
# Chen et al. 2021). The vMF monitor skips this run (one chunk).
_base_ = ['./mbyol-bn-strong-aug_vit-small-p16_8xb128-amp-coslr-200e_in100.py']
model = dict(num_chunks=1, backbone=dict(stop_grad_conv1=True))
