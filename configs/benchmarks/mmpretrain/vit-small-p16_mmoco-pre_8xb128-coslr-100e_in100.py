# M-MoCo §3.1 "Fine-tuning" of the ImageNet-100 ViT-S/16 pre-trainings (the
# "Finetune" column of Tables 1-3, Figs. 3b, 4, 7): "We follow the public
# repository of MAE. We set blr as 5e-4 with a wd of 0.05, and use
# layer-wise learning rate decay of 0.65. We fine-tune for 100 epochs" with
# a 100-way head. The rest is MAE's recipe of
# the base (batch 1024, lr 2e-3, 5 warm-up, drop path 0.1, RandAugment,
# mixup, cutmix). The backbone is the pre-training's MoCo v3 ViT-S (12 heads).
# Data: CMC's 100-class split, class-per-folder
# data/imagenet100/{train,val}/<wnid>/*.JPEG (see
# configs/_base_/datasets/imagenet100_bs128_mmoco.py; val images sorted into
# class folders the same way). The default checkpoint is Table 1a's n = 8
# run (mmoco-bn-strong-aug_vit-small-p16_8xb128-amp-coslr-200e_in100.py).
_base_ = './_base_/vit-base-p16_ft-100e_in1k.py'
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
        init_cfg=dict(
            checkpoint='checkpoints/mmoco-bn-strong-aug_vit-small-p16_200e_'
            'in100/mmpretrain_backbone.pth')),
    head=dict(num_classes=num_classes, in_channels=vit_small['embed_dims']))
