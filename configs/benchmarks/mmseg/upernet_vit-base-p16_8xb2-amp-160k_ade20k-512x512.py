# UperNet + ViT-B/16 on ADE20K, 512 x 512, 160k iterations, batch 16 (8 x 2):
# the MAE / BEiT protocol as in mmseg's configs/mae config (Feature2Pyramid,
# UPerHead 768 + FCN auxiliary head, AdamW lr 1e-4, wd 0.05, layer decay
# 0.65, slide inference 512 / 341, mIoU), which MOMA §4.3, SdAE §4.3 and
# MimCo §4.1 report. The backbone is our MaskedViT (= mmpretrain's ViT, the
# keys mmmoma pre-trains), so it takes the file of
#   python tools/model_converters/pretrain_to_transfer.py CKPT OUT_DIR
# (OUT_DIR/mmseg_backbone_512px.pth; StrictPretrained fails on any missing
# or unexpected key). Runs with our tools/train.py and with mmseg's.
_base_ = [
    'mmseg::_base_/models/upernet_mae.py',
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
        type='mmpretrain.MaskedViT',
        arch='b',
        img_size=512,
        patch_size=16,
        out_type='featmap',
        out_indices=[3, 5, 7, 11],
        # The pre-trained final norm is kept on the last map (mmseg's MAE
        # drops it); no key of the checkpoint goes unused.
        final_norm=True,
        drop_path_rate=0.1,
        layer_scale_init_value=1.0,  # mmseg MAE init_values=1.0 (identity)
        init_cfg=dict(
            type='StrictPretrained',
            checkpoint='checkpoints/vit-base-p16/mmseg_backbone_512px.pth',
            allowed_missing=['layers.*.gamma*'])),
    neck=dict(embed_dim=768, rescales=[4, 2, 1, 0.5]),
    decode_head=dict(
        in_channels=[768, 768, 768, 768], num_classes=150, channels=768),
    auxiliary_head=dict(in_channels=768, num_classes=150),
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(341, 341)))

# Layer-wise lr decay for mmpretrain's ViT inside an mmseg EncoderDecoder
# (mmseg's LayerDecayOptimizerConstructor only knows BEiT / MAE by name):
# block i gets lr * 0.65 ** (12 - i), the heads lr. No weight decay on 1-D
# parameters, cls_token and pos_embed, as mmseg's constructor.
optim_wrapper = dict(
    _delete_=True,
    type='AmpOptimWrapper',
    optimizer=dict(
        type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='mmpretrain.BackboneLayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(
        layer_decay_rate=0.65,
        flat_decay_mult=0.0,
        custom_keys={
            '.cls_token': dict(decay_mult=0.0),
            '.pos_embed': dict(decay_mult=0.0)
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
