# M-MoCo §3.1 "Linear probing" of the ImageNet-100 ViT-S/16 pre-trainings
# (the "Linear" column of Tables 1-3): "We use LARS optimizer with a blr of
# 1.0, weight decay = 0, bsz = 4096. The linear head is trained for 100
# epochs": lr 16 = 1.0 x 4096 / 256, batch 4096 = 8 x 512. The paper names
# nothing else: MAE's protocol of the base (frozen backbone, CLS token,
# BatchNorm without affine before the linear head, 10 warm-up epochs,
# crop + flip, drop_last). The backbone is MoCo v3's ViT-S (12 heads).
# Data: CMC's 100-class split, class-per-folder
# data/imagenet100/{train,val}/<wnid>/*.JPEG (see
# configs/_base_/datasets/imagenet100_bs128_mmoco.py; val images sorted into
# class folders the same way). The default checkpoint is Table 1a's n = 8
# run (mmoco-bn-strong-aug_vit-small-p16_8xb128-amp-coslr-200e_in100.py).
_base_ = './_base_/vit-base-p16_linear-90e_in1k.py'
max_epochs = 100
warmup_epochs = 10
batch_size = 4096
num_classes = 100
vit_small = dict(
    embed_dims=384, num_layers=12, num_heads=12, feedforward_channels=1536)
data_preprocessor = dict(num_classes=num_classes)
train_dataloader = dict(
    batch_size=batch_size // 8,
    dataset=dict(
        _delete_=True,
        type='CustomDataset',
        data_root='data/imagenet100',
        data_prefix='train',
        pipeline={{_base_.train_pipeline}}))
val_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='CustomDataset',
        data_root='data/imagenet100',
        data_prefix='val',
        pipeline={{_base_.test_pipeline}}))
test_dataloader = val_dataloader
model = dict(
    backbone=dict(
        arch=dict(_delete_=True, **vit_small),
        init_cfg=dict(
            checkpoint='checkpoints/mmoco-bn-strong-aug_vit-small-p16_200e_'
            'in100/mmpretrain_backbone.pth')),
    neck=dict(input_features=vit_small['embed_dims']),
    head=dict(num_classes=num_classes, in_channels=vit_small['embed_dims']))
optim_wrapper = dict(optimizer=dict(lr=1.0 * batch_size / 256))
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-4,
        by_epoch=True,
        begin=0,
        end=warmup_epochs,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        T_max=max_epochs - warmup_epochs,
        by_epoch=True,
        begin=warmup_epochs,
        end=max_epochs,
        eta_min=0.0,
        convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=max_epochs)
auto_scale_lr = dict(base_batch_size=batch_size)
