# MOMA Table 6: CIFAR-10 fine-tuning of the ViT-L-MAE -> ViT-B-MoCo student,
# "following the fine-tuning procedure of ViT and MoCo v3". Neither paper's
# transfer recipe is fully specified for this code base; we use MOMA's own
# ImageNet fine-tuning recipe (AdamW 1.5e-3 at batch 1024 -> 7.5e-4 at 512,
# wd 0.05, layer decay 0.65, 100 epochs with 5 warm-up, AutoAugment + CutMix)
# on the 32 x 32 images resized to 224 (MoCo v3 fine-tunes at 224), batch
# 512 = 8 x 64. Data: mmpretrain's CIFAR10 reads the python version,
# data/cifar10/cifar-10-batches-py/; it is never downloaded here
# (download=False): fetch https://www.cs.toronto.edu/~kriz/cifar.html first.
_base_ = './_base_/vit-base-p16_ft-100e_in1k.py'
num_classes = 10
train_pipeline = [
    dict(type='Resize', scale=224, backend='pillow',
         interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(
        type='AutoAugment',
        policies='imagenet',
        hparams=dict(pad_val=[124, 116, 104], interpolation='bicubic')),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='Resize', scale=224, backend='pillow',
         interpolation='bicubic'),
    dict(type='PackInputs'),
]
# The pre-training's normalisation (ImageNet statistics, as DeiT / MoCo v3
# transfer), not CIFAR's own: the backbone expects those inputs. CIFAR arrays
# are RGB already (hence to_rgb=False, and the RGB pad value above).
data_preprocessor = dict(
    num_classes=num_classes,
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    to_rgb=False)
train_dataloader = dict(
    batch_size=64,
    dataset=dict(
        _delete_=True,
        type='CIFAR10',
        data_root='data/cifar10',
        split='train',
        download=False,
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=64,
    dataset=dict(
        _delete_=True,
        type='CIFAR10',
        data_root='data/cifar10',
        split='test',
        download=False,
        pipeline=test_pipeline))
test_dataloader = val_dataloader
model = dict(
    backbone=dict(
        init_cfg=dict(checkpoint='checkpoints/moma-mae-large-to-mocov3_'
                      'vit-base-p16/mmpretrain_backbone.pth')),
    head=dict(num_classes=num_classes),
    train_cfg=dict(augments=[dict(type='CutMix', alpha=1.0)]))
optim_wrapper = dict(optimizer=dict(lr=7.5e-4))
auto_scale_lr = dict(base_batch_size=512)
