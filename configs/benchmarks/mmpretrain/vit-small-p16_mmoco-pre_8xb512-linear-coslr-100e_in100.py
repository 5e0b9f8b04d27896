# M-MoCo §3.1 "Linear probing" (the ImageNet-100 ablations, ViT-S/16; Tables
# 1-3, Fig. 7): LARS, blr 1.0 (lr 16 at batch 4096 = 8 x 512), wd 0, 100
# epochs. The paper names nothing else: MAE's protocol of the base (frozen
# backbone, CLS token, BatchNorm without affine before the linear head,
# 10 warm-up epochs, crop + flip). The ImageNet-1k M-MoCo linear config
# holds that optimizer and schedule; this one changes data and arch only.
# Data as in the fine-tuning config.
_base_ = './vit-base-p16_mmoco-pre_8xb512-linear-coslr-100e_in1k.py'
num_classes = 100
vit_small = dict(
    embed_dims=384, num_layers=12, num_heads=12, feedforward_channels=1536)
data_preprocessor = dict(num_classes=num_classes)
train_dataloader = dict(
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
        init_cfg=dict(checkpoint='checkpoints/mmoco_vit-small-p16_200e_in100/'
                      'mmpretrain_backbone.pth')),
    neck=dict(input_features=vit_small['embed_dims']),
    head=dict(num_classes=num_classes, in_channels=vit_small['embed_dims']))
