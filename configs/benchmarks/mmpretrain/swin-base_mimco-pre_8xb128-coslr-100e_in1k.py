# MimCo Table 6, Swin-B: drop path 0.2, layer decay 0.8 (84.04 %; the 0.75
# that §4.1's text states gives 83.88 % in Table 6, so the table's best row
# is taken), 100 epochs (84.3 % after 300 pre-training epochs); see the
# Swin-T config.
_base_ = './swin-tiny_mimco-pre_8xb128-coslr-100e_in1k.py'
model = dict(
    backbone=dict(
        arch='base',
        drop_path_rate=0.2,
        init_cfg=dict(checkpoint='checkpoints/mimco_swin-base_300e/'
                      'mmpretrain_backbone.pth')),
    head=dict(in_channels=1024))
optim_wrapper = dict(paramwise_cfg=dict(layer_decay_rate=0.8))  # Table 6
