"""Tiny stand-ins for the mmseg benchmark configs (configs/benchmarks/mmseg):
an ADE20K-layout folder, tiny pre-trained backbones, the
:func:`~mmmoma.utils.model_shrinking.shrink_model` arguments of a config and
the --cfg-options that point it at the folder for a 2-iteration CPU run,
through its own pipelines, heads and optimizer constructor."""
import os
from typing import Any, Dict, List

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

    from mmmoma.checkpoints import export_transfer_backbones
    from mmmoma.models.backbones import MaskedViT
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


def is_swin(config: str) -> bool:
    return 'swin' in os.path.basename(config)


def crop_size(config: str) -> int:
    """The tiny crop: Swin's last stage (stride 32) must hold a whole 2 x 2
    window; a 32 px ViT with 4 px patches has an 8 x 8 grid."""
    return 64 if is_swin(config) else 32


def shrink_arguments(config: str) -> Dict[str, Any]:
    """:func:`~mmmoma.utils.model_shrinking.shrink_model` arguments that fit
    :func:`write_tiny_pretrained` (and the segmentor's crop to
    :func:`crop_size`, 16-wide decode heads)."""
    return dict(arch=TINY_VIT, swin_arch=TINY_SWIN, img_size=crop_size(config),
                patch_size=4, window_size=2, head_channels=16,
                scope='mmseg')


def run_options(config: str, data_root: str,
                pretrained: Dict[str, str]) -> List[str]:
    """--cfg-options that run ``config`` for 2 iterations + one validation
    (its own inference mode) on the stand-in, the tiny backbone initialised
    from ``pretrained`` (:func:`write_tiny_pretrained`) by the config's own
    StrictPretrained init_cfg."""
    crop = crop_size(config)
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
        'model.backbone.init_cfg.checkpoint':
        pretrained['swin' if is_swin(config) else 'vit'],
        'train_cfg.max_iters': 2,
        'train_cfg.val_interval': 2,
        'default_hooks.logger.interval': 1,
        'default_hooks.checkpoint.interval': 2,
        'default_hooks.visualization.draw': False,
        'param_scheduler.0.end': 1,
        'param_scheduler.1.begin': 1,
        'param_scheduler.1.end': 2,
    }
    return [f'{key}={repr(value).replace(" ", "")}'
            for key, value in options.items()]
