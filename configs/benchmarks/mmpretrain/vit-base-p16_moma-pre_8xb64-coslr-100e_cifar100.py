# MOMA Table 6: CIFAR-100 fine-tuning; the CIFAR-10 config's recipe (see
# there) with mmpretrain's CIFAR100, which reads the python version,
# data/cifar100/cifar-100-python/; never downloaded here (download=False).
_base_ = './vit-base-p16_moma-pre_8xb64-coslr-100e_cifar10.py'
num_classes = 100
data_preprocessor = dict(num_classes=num_classes)
train_dataloader = dict(
    dataset=dict(type='CIFAR100', data_root='data/cifar100'))
val_dataloader = dict(
    dataset=dict(type='CIFAR100', data_root='data/cifar100'))
test_dataloader = val_dataloader
model = dict(head=dict(num_classes=num_classes))
