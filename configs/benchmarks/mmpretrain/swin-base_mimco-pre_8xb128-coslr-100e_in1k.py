# MimCo §4.1 and Table 6, Swin-B: layer decay 0.75, drop path 0.2, 100 epochs
# (84.3 % after 300 pre-training epochs); see the Swin-T config.
_base_ = './swin-tiny_mimco-pre_8xb128-coslr-100e_in1k.py'
model = dict(
    backbone=dict(
        arch='base',
        drop_path_rate=0.2,
        init_cfg=dict(checkpoint='checkpoints/mimco_swin-base_300e/'
                      'mmpretrain_backbone.pth')),
    head=dict(in_channels=1024))
