# SdAE ViT-B/16 (paper §2; official code, a fork of the MAE code base):
# MAE encoder + MAE decoder (512-d, 8 blocks, 16 heads) whose prediction layer
# outputs 768-d teacher features; EMA teacher fed the 147 masked tokens of a
# 224 px image in 3 folds of 49 (multi-fold masking).
model = dict(
    type='SdAE',
    data_preprocessor=dict(
        type='SelfSupDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        to_rgb=True),
    backbone=dict(
        type='MaskedViT',
        arch='b',
        img_size=224,
        patch_size=16,
        out_type='raw',
        pos_embed_type='sincos',  # fixed 2-D sin-cos, as MAE
        drop_path_rate=0.25),
    neck=dict(
        type='MAEPretrainDecoder',
        num_patches=196,
        patch_size=16,
        decoder_embed_dim=512,
        decoder_depth=8,
        decoder_num_heads=16,
        mlp_ratio=4),  # embed_dim / predict_feature_dim: the encoder width
    mask_ratio=0.75,
    teacher_input='masked',
    num_folds=3,
    base_momentum=0.96,
    end_momentum=0.99,
    momentum_update='epoch',
    teacher_init='random',
    # MAE's initialisation (mmpretrain's MAE config)
    init_cfg=[
        dict(type='Xavier', layer='Linear', distribution='uniform'),
        dict(type='Constant', layer='LayerNorm', val=1.0, bias=0.0)
    ])
