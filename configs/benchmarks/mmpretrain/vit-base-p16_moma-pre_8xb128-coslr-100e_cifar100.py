# MOMA Table 6: CIFAR-100 fine-tuning (91.4 %); the CIFAR-10 config's MoCo v3
# / DeiT recipe (see there) with MoCo v3's CIFAR-100 change, --mixup 0.5.
# mmpretrain's CIFAR100 reads the python version,
# data/cifar100/cifar-100-python/; never downloaded here (download=False).
_base_ = './vit-base-p16_moma-pre_8xb128-coslr-100e_cifar10.py'
num_classes = 100
data_preprocessor = dict(num_classes=num_classes)
train_dataloader = dict(
    dataset=dict(type='CIFAR100', data_root='data/cifar100'))
val_dataloader = dict(
    dataset=dict(type='CIFAR100', data_root='data/cifar100'))
test_dataloader = val_dataloader
model = dict(
    head=dict(num_classes=num_classes),
    train_cfg=dict(augments=[
        dict(type='Mixup', alpha=0.5),  # MoCo v3 CIFAR-100: --mixup 0.5
        dict(type='CutMix', alpha=1.0)
    ]))
