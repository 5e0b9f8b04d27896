# MimCo Table 3 (§4.1), Swin-T row, "following MoBY": UperNet + Swin-T on
# ADE20K 512 x 512, 160k iterations, batch 16, i.e. the Swin recipe of
# mmseg's configs/swin (AdamW lr 6e-5, wd 0.01, no decay on norms and
# relative position tables, drop path 0.3, no layer decay). The backbone is
# mmpretrain's SwinTransformer (the keys of the MimCo student, window 7), so
# it takes pretrain_to_transfer.py's mmseg file of
# configs/mimco/mimco_swin-tiny_8xb256-amp-coslr-300e_in1k.py; the per-stage
# output norms 0-2 are new.
_base_ = [
    'mmseg::_base_/models/upernet_swin.py',
    'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_160k.py',
]
custom_imports = dict(imports=['mmmoma'], allow_failed_imports=False)
# crash-safe checkpoints and the NaN guard (README, "What survives what")
default_hooks = dict(
    checkpoint=dict(type='AtomicCheckpointHook'),
    non_finite_guard=dict(type='NonFiniteGuardHook', max_skipped_steps=0))

crop_size = (512, 512)
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(
        _delete_=True,
        type='mmpretrain.SwinTransformer',
        arch='tiny',
        img_size=224,
        window_size=7,
        drop_path_rate=0.3,
        out_indices=(0, 1, 2, 3),
        init_cfg=dict(
            type='StrictPretrained',
            checkpoint='checkpoints/mimco_swin-tiny_300e/'
            'mmseg_backbone_512px.pth',
            allowed_missing=['norm0.*', 'norm1.*', 'norm2.*'])),
    decode_head=dict(in_channels=[96, 192, 384, 768], num_classes=150),
    auxiliary_head=dict(in_channels=384, num_classes=150))

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW', lr=6e-5, betas=(0.9, 0.999), weight_decay=0.01),
    paramwise_cfg=dict(
        custom_keys={
            'absolute_pos_embed': dict(decay_mult=0.0),
            'relative_position_bias_table': dict(decay_mult=0.0),
            'norm': dict(decay_mult=0.0)
        }))
param_scheduler = [
    dict(
        type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0,
        end=1500),
    dict(
        type='PolyLR',
        eta_min=0.0,
        power=1.0,
        begin=1500,
        end=160000,
        by_epoch=False),
]
train_dataloader = dict(batch_size=2)  # 8 GPUs x 2 = 16
val_dataloader = dict(batch_size=1)
test_dataloader = val_dataloader
