# M-MoCo with ViT-B/16 (paper §3, §4.2): the online encoder sees each view's
# shuffled patches as n = 8 chunks, each with its own CLS token; the
# momentum encoder sees the full view (m = 1). Projector 3 layers and
# predictor 2 layers, hidden 4096, out 256, as MoCo v3, but with LayerNorm
# (§3.4). MaskedMoCoV3's defaults: temperature tau = 0.2 (loss x 2 tau),
# and momentum 0.99 -> 1 (cosine, every iteration; driven
# by TeacherEMAHook) are MoCo v3's. Widths of the heads follow the backbone.
# No frozen patch embedding (Table 1: M-MoCo trains it); MoCo v3's trick is
# backbone.stop_grad_conv1=True.
model = dict(
    type='MaskedMoCoV3',
    num_chunks=8,
    num_target_chunks=1,
    base_momentum=0.99,
    end_momentum=1.0,
    backbone=dict(
        type='MaskedMoCoV3ViT',
        arch='base',
        img_size=224,
        patch_size=16,
        stop_grad_conv1=False),
    neck=dict(
        type='NormMLP',
        hid_channels=4096,
        out_channels=256,
        num_layers=3,
        norm_cfg=dict(type='LN')),
    predictor=dict(
        type='NormMLP',
        hid_channels=4096,
        num_layers=2,
        norm_cfg=dict(type='LN')))
