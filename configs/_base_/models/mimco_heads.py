# MimCo (paper §3) without its networks: losses, heads, queues, masking and
# momentum (see mmmoma/models/selfsup/mimco.py for the choices the paper
# leaves open). mimco_vit-base-p16.py / mimco_swin-base.py add the student
# `backbone` and the frozen `teacher`.
model = dict(
    type='MimCo',
    # patch heads p1, p2 (p3 = EMA of p1): MoBY's MLP on every patch as 1x1
    # convolutions; image heads: MoBY's 2-layer MLP on the pooled features.
    # Input widths and the predictors' output widths are filled in by MimCo
    # (a predictor outputs its projector's width; the teacher's for l1).
    patch_projector=dict(
        type='ConvProjector', hidden_channels=4096, out_channels=256),
    patch_predictor=dict(type='ConvProjector', hidden_channels=4096),
    image_projector=dict(
        type='NonLinearNeck',
        hid_channels=4096,
        out_channels=256,
        num_layers=2,
        with_bias=True,
        with_last_bn=False,
        with_last_bias=True,
        with_avg_pool=True,  # global average pooling of the feature map
        norm_cfg=dict(type='BN1d')),
    image_predictor=dict(
        type='NonLinearNeck',
        hid_channels=4096,
        num_layers=2,
        with_bias=True,
        with_last_bn=False,
        with_last_bias=True,
        with_avg_pool=False,
        norm_cfg=dict(type='BN1d')),
    mask_patch_size=32,  # SimMIM masking: 32 px mask patches, 60 % masked
    mask_ratio=0.6,
    temperature=0.2,
    patch_queue_length=4096,
    image_queue_length=4096,
    patch_loss='contrastive',
    patch_loss_weight=1.0,
    image_loss_weight=1.0)
