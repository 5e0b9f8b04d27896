"""Tiny configs shared by the tests (tiny ViTs on 32 px digit scenes)."""
import os.path as osp
from typing import Optional, Sequence

from mmengine.config import Config

MEAN, STD = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]
PIPELINE = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]
SELFSUP_PREPROCESSOR = dict(
    type='SelfSupDataPreprocessor', mean=MEAN, std=STD, to_rgb=True)


def folder_loader(data_root: str, split: str, batch_size: int = 32,
                  shuffle: bool = False) -> dict:
    """A dataloader config over ``data_root/split`` (mmpretrain layout)."""
    return dict(
        batch_size=batch_size,
        num_workers=0,
        persistent_workers=False,
        sampler=dict(type='DefaultSampler', shuffle=shuffle),
        collate_fn=dict(type='default_collate'),
        dataset=dict(
            type='CustomDataset',
            data_root=data_root,
            data_prefix=split,
            pipeline=PIPELINE))


def tiny_mae_model(arch: dict, drop_rate: float = 0.0,
                   with_preprocessor: bool = True) -> dict:
    """mmpretrain MAE with a tiny ViT (32 px, patch 4) and 1-block decoder."""
    model = dict(
        type='MAE',
        backbone=dict(
            type='MAEViT',
            arch=arch,
            img_size=32,
            patch_size=4,
            drop_rate=drop_rate,
            mask_ratio=0.75),
        neck=dict(
            type='MAEPretrainDecoder',
            num_patches=64,
            patch_size=4,
            in_chans=3,
            embed_dim=arch['embed_dims'],
            decoder_embed_dim=32,
            decoder_depth=1,
            decoder_num_heads=4),
        head=dict(
            type='MAEPretrainHead',
            norm_pix=True,
            patch_size=4,
            loss=dict(type='PixelReconstructionLoss', criterion='L2')))
    if with_preprocessor:
        model['data_preprocessor'] = SELFSUP_PREPROCESSOR
    return model


def tiny_sdae_cfg(arch: dict, **kwargs) -> dict:
    """A tiny SdAE config: 32 px, patch 4 (64 tokens, 48 masked in 3 folds
    of 16), 1-block 32-d decoder; ``kwargs`` override SdAE arguments."""
    cfg = dict(
        type='SdAE',
        backbone=dict(
            type='MaskedViT',
            arch=arch,
            img_size=32,
            patch_size=4,
            out_type='raw',
            pos_embed_type='sincos'),
        neck=dict(
            type='MAEPretrainDecoder',
            num_patches=64,
            patch_size=4,
            decoder_embed_dim=32,
            decoder_depth=1,
            decoder_num_heads=4),
        mask_ratio=0.75,
        num_folds=3)
    cfg.update(kwargs)
    return cfg


def tiny_mae_config(data_root: str,
                    work_dir: str,
                    arch: dict,
                    max_epochs: int = 1,
                    batch_size: int = 25,
                    hooks: Sequence[dict] = (),
                    checkpoint: Optional[dict] = None,
                    knn_batch_size: Optional[int] = None) -> Config:
    """A self-contained training config (no ``_base_``) of a tiny MAE.

    The data preprocessor is given at the top level, as mmpretrain configs
    do; the Runner (and tools/knn_eval.py) must merge it into the model.
    ``knn_batch_size`` adds the ``knn_*_dataloader`` fields the kNN tool reads.
    """
    cfg = dict(
        default_scope='mmpretrain',
        custom_imports=dict(imports=['mmmoma'], allow_failed_imports=False),
        experiment_name=osp.basename(work_dir),
        work_dir=work_dir,
        data_preprocessor=SELFSUP_PREPROCESSOR,
        model=tiny_mae_model(arch, with_preprocessor=False),
        train_dataloader=folder_loader(
            data_root, 'train', batch_size=batch_size, shuffle=True),
        optim_wrapper=dict(
            optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05)),
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
        default_hooks=dict(
            logger=dict(type='LoggerHook', interval=1),
            checkpoint=checkpoint),
        visualizer=dict(
            type='UniversalVisualizer',
            vis_backends=[dict(type='LocalVisBackend')]),
        custom_hooks=list(hooks),
        randomness=dict(seed=0),
        log_level='INFO')
    if knn_batch_size is not None:
        cfg['knn_train_dataloader'] = folder_loader(
            data_root, 'train', batch_size=knn_batch_size)
        cfg['knn_val_dataloader'] = folder_loader(
            data_root, 'val', batch_size=knn_batch_size)
    return Config(cfg)


def _tiny_mlp(with_avg_pool: bool, **widths: int) -> dict:
    """MoBY's 2-layer MLP head (``NonLinearNeck``) at 32 hidden."""
    return dict(
        type='NonLinearNeck',
        hid_channels=32,
        num_layers=2,
        with_bias=True,
        with_last_bn=False,
        with_last_bias=True,
        with_avg_pool=with_avg_pool,
        norm_cfg=dict(type='BN1d'),
        **widths)


def tiny_mimco_cfg(arch: dict, teacher_checkpoint: str, **overrides) -> dict:
    """A tiny MimCo config: a ``SimMIMViT`` student and a frozen
    ``MaskedViT`` teacher of the same ``arch`` (32 px, patch 4: 8 x 8
    feature maps), 8 px mask patches (a 4 x 4 mask grid, ratio 0.6: 10 of
    16 masked), heads 32 hidden / 16 out, queues of 64 keys.

    Args:
        arch (dict): ViT arch of student and teacher (e.g. embed 64, depth 2).
        teacher_checkpoint (str): the teacher's weights, e.g. a ``MaskedViT``
            state dict saved as ``{'state_dict': {'backbone.' + key: ...}}``.
        **overrides: MimCo arguments replacing the defaults here.

    Returns:
        dict: the model config (``type='MimCo'``).
    """
    vit = dict(arch=arch, img_size=32, patch_size=4, out_type='featmap')
    cfg = dict(
        type='MimCo',
        backbone=dict(type='SimMIMViT', **vit),
        teacher=dict(
            network=dict(type='MaskedViT', **vit),
            checkpoint=teacher_checkpoint),
        patch_projector=dict(
            type='ConvProjector', hidden_channels=32, out_channels=16),
        patch_predictor=dict(type='ConvProjector', hidden_channels=32),
        image_projector=_tiny_mlp(with_avg_pool=True, out_channels=16),
        image_predictor=_tiny_mlp(with_avg_pool=False),
        patch_queue_length=64,
        image_queue_length=64,
        mask_patch_size=8,
        mask_ratio=0.6)
    cfg.update(overrides)
    return cfg
