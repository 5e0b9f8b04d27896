# M-MoCo ViT-S/16 with MoCo v3's BatchNorm heads: "We use the same Projector
# MLP and Predictor MLP as MoCo-v3. Both have BatchNorm (BN) layer applied
# to each fully-connected (fc) layer" (§3.1), the heads of every experiment
# before §3.4 ("MoCo-v3 uses BN, so M-MoCo naturally inherits this design
# in previous sections"). SyncBN: MoCo v3's main_moco.py converts every BN
# to SyncBatchNorm, so the statistics span the whole batch of 1024 (on one
# process it is plain BN). The output BN has no affine (MoCo v3's
# _build_mlp, last_bn=True; NormMLP's with_last_norm).
_base_ = ['./mmoco_vit-small-p16.py']
model = dict(
    neck=dict(norm_cfg=dict(type='SyncBN')),
    predictor=dict(norm_cfg=dict(type='SyncBN')))
