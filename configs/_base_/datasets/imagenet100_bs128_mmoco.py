# ImageNet-100 (the 100-class split of Tian et al., CMC) for the M-MoCo
# ablations (paper §3.1): a class-per-folder copy of those 100 ImageNet
# train classes in data/imagenet100/train/<wnid>/*.JPEG (the list is
# CMC's imagenet100.txt; symlinking the folders out of ImageNet works).
# Light augmentation as on ImageNet-1k; batch 1024 = 8 GPUs x 128 (§3.1),
# drop_last as MoCo v3 (from the base).
_base_ = ['./imagenet_bs512_mmoco.py']
train_dataloader = dict(
    batch_size=128,
    dataset=dict(
        _delete_=True,
        type='CustomDataset',
        data_root='data/imagenet100/',
        data_prefix='train',
        pipeline={{_base_.train_pipeline}}))
