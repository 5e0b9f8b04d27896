"""Tiny stand-ins for the mmseg benchmark configs (configs/benchmarks/mmseg):
an ADE20K-layout folder and the --cfg-options that shrink a config to a
2-iteration CPU run on it, through its own pipelines, heads and optimizer
constructor."""
import os
from typing import Dict, List

import numpy as np
from PIL import Image

SEG_SIZE = 64
TINY_VIT = dict(embed_dims=32, num_layers=4, num_heads=2,
                feedforward_channels=64)
TINY_SWIN = dict(embed_dims=8, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2])


def write_tiny_pretrained(root: str) -> Dict[str, str]:
    """mmseg backbone files, through the bridge, of a tiny pre-trained
    ViT (32 px, patch 4: an 8 x 8 grid) and Swin (window 2, only the last
    stage's norm, as a MimCo student), saved as training checkpoints."""
    import torch
    from mmpretrain.models import SwinTransformer

    from mmmoma.models.backbones import MaskedViT
    from mmmoma.models.utils import export_transfer_backbones
    os.makedirs(root, exist_ok=True)
    torch.manual_seed(0)
    backbones = dict(
        vit=MaskedViT(arch=TINY_VIT, img_size=32, patch_size=4),
        swin=SwinTransformer(arch=TINY_SWIN, img_size=64, window_size=2,
                             out_indices=(3, )))
    files = {}
    for name, backbone in backbones.items():
        source = os.path.join(root, f'{name}_pretrain.pth')
        torch.save({'state_dict': {f'backbone.{key}': value for key, value
                                   in backbone.state_dict().items()},
                    'meta': {}}, source)
        paths = export_transfer_backbones(
            source, os.path.join(root, name), seg_img_size=32,
            show_progress=False)
        files[name] = str(paths['mmseg'])
    return files


def write_ade_stand_in(root: str, num_classes: int = 150,
                       per_split: int = 2, seed: int = 0) -> str:
    """``ADEChallengeData2016/{images,annotations}/{training,validation}``
    with random 64 x 64 jpgs and label maps 0..num_classes (0 = ignored
    "other", as ADE20K with reduce_zero_label)."""
    rng = np.random.default_rng(seed)
    for split in ('training', 'validation'):
        os.makedirs(os.path.join(root, 'images', split), exist_ok=True)
        os.makedirs(os.path.join(root, 'annotations', split), exist_ok=True)
        for index in range(per_split):
            name = f'ADE_{split}_{index:08d}'
            image = rng.integers(0, 256, (SEG_SIZE, SEG_SIZE, 3), np.uint8)
            Image.fromarray(image).save(
                os.path.join(root, 'images', split, name + '.jpg'))
            labels = rng.integers(0, num_classes + 1, (SEG_SIZE, SEG_SIZE))
            Image.fromarray(labels.astype(np.uint8)).save(
                os.path.join(root, 'annotations', split, name + '.png'))
    return root


def shrink_mmseg(config: str, data_root: str,
                 pretrained: Dict[str, str]) -> List[str]:
    """--cfg-options that run ``config`` for 2 iterations + one validation
    (slide inference) on the stand-in, the tiny backbone initialised from
    ``pretrained`` (:func:`write_tiny_pretrained`) by the config's own
    StrictPretrained init_cfg."""
    return [
        f'{key}={_format(value)}'
        for key, value in _shrink_options(config, data_root,
                                          pretrained).items()
    ]


def _format(value: object) -> str:
    return repr(value).replace(' ', '')


def _shrink_options(config: str, data_root: str,
                    pretrained: Dict[str, str]) -> Dict[str, object]:
    is_swin = 'swin' in os.path.basename(config)
    # Swin's last stage (stride 32) must hold a whole 2 x 2 window
    crop = 64 if is_swin else 32
    options: Dict[str, object] = {
        'train_dataloader.dataset.data_root': data_root,
        'val_dataloader.dataset.data_root': data_root,
        'test_dataloader.dataset.data_root': data_root,
        'train_dataloader.batch_size': 2,
        **{f'{loader}_dataloader.{key}': value
           for loader in ('train', 'val', 'test')
           for key, value in (('num_workers', 0),
                              ('persistent_workers', False))},
        # RandomResize to (2048, 512) would blow 64 px up to 512 px
        'train_dataloader.dataset.pipeline.2.scale': (4 * crop, crop),
        'train_dataloader.dataset.pipeline.3.crop_size': (crop, crop),
        'val_dataloader.dataset.pipeline.1.scale': (128, 64),
        'test_dataloader.dataset.pipeline.1.scale': (128, 64),
        'model.data_preprocessor.size': (crop, crop),
        'model.backbone.init_cfg.checkpoint':
        pretrained['swin' if is_swin else 'vit'],
        'model.backbone.drop_path_rate': 0.0,
        'train_cfg.max_iters': 2,
        'train_cfg.val_interval': 2,
        'default_hooks.logger.interval': 1,
        'default_hooks.checkpoint.interval': 2,
        'default_hooks.visualization.draw': False,
        'param_scheduler.0.end': 1,
        'param_scheduler.1.begin': 1,
        'param_scheduler.1.end': 2,
    }
    if not is_swin:  # slide inference
        options['model.test_cfg.crop_size'] = (32, 32)
        options['model.test_cfg.stride'] = (21, 21)
    if is_swin:
        channels: List[int] = [TINY_SWIN['embed_dims'] * 2**i
                               for i in range(4)]
        options.update({
            'model.backbone.arch._delete_': True,
            **{f'model.backbone.arch.{key}': value
               for key, value in TINY_SWIN.items()},
            'model.backbone.window_size': 2,
            'model.backbone.img_size': crop,
        })
    else:
        channels = [TINY_VIT['embed_dims']] * 4
        options.update({
            'model.backbone.arch._delete_': True,
            **{f'model.backbone.arch.{key}': value
               for key, value in TINY_VIT.items()},
            'model.backbone.img_size': 32,
            'model.backbone.patch_size': 4,
            'model.backbone.out_indices': [0, 1, 2, 3],
            'model.neck.embed_dim': TINY_VIT['embed_dims'],
        })
    options.update({
        'model.decode_head.in_channels': channels,
        'model.decode_head.channels': 16,
        'model.auxiliary_head.in_channels': channels[2],
        'model.auxiliary_head.channels': 8,
    })
    return options
