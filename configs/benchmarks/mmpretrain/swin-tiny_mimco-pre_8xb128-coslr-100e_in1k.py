# MimCo §4.1 and Table 6, Swin-T: layer decay 0.75, drop path 0.1, 100 epochs
# (81.9 % after 300 pre-training epochs); the MAE recipe otherwise. The
# backbone is mmpretrain's SwinTransformer (the MimCo student's keys; only the
# last stage's norm is used), layer depths from its get_layer_depth.
_base_ = './_base_/vit-base-p16_ft-100e_in1k.py'
model = dict(
    backbone=dict(
        _delete_=True,
        type='SwinTransformer',
        arch='tiny',
        img_size=224,
        drop_path_rate=0.1,
        init_cfg=dict(
            type='StrictPretrained',
            checkpoint='checkpoints/mimco_swin-tiny_300e/'
            'mmpretrain_backbone.pth',
            prefix='backbone.')),
    neck=dict(_delete_=True, type='GlobalAveragePooling'),
    head=dict(in_channels=768))
optim_wrapper = dict(
    paramwise_cfg=dict(
        layer_decay_rate=0.75,
        custom_keys={
            '.norm': dict(decay_mult=0.0),
            '.bias': dict(decay_mult=0.0),
            'absolute_pos_embed': dict(decay_mult=0.0),
            'relative_position_bias_table': dict(decay_mult=0.0)
        }))
