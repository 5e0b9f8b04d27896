"""What the pre-training config tests (SdAE, MOMA, MimCo, M-MoCo) share: the
configs of a method, the tiny model (one call of
:func:`~mmmoma.utils.model_shrinking.shrink_model`) with 32 px crops, and
the --cfg-options of a 2-iteration epoch on the 16-image stand-in."""
import glob
import os.path as osp
from typing import Any, List, Sequence

from mmengine.config import Config

from mmmoma.utils.config_tools import (find_train_pipeline,
                                       override_pipeline_size)
from mmmoma.utils.model_shrinking import shrink_model

from ..test_tools.utils import REPO_ROOT

#: The tiny ViT of every pre-training smoke run: 64 wide, 2 blocks.
TINY_VIT = dict(
    embed_dims=64, num_layers=2, num_heads=4, feedforward_channels=128)
BATCH_SIZE = 8  # the stand-in's 16 training images: 2 iterations / epoch
ITERS = 2
CROP = 32


def method_configs(method: str, demo_pattern: str) -> List[str]:
    """``configs/<method>/*.py``, the ``configs/demo`` files matching
    ``demo_pattern`` and the ``configs/mix/<method>-*.py`` combinations,
    sorted."""
    return sorted(
        glob.glob(osp.join(REPO_ROOT, 'configs', method, '*.py')) +
        glob.glob(osp.join(REPO_ROOT, 'configs', 'demo', demo_pattern)) +
        glob.glob(osp.join(REPO_ROOT, 'configs', 'mix', f'{method}-*.py')))


def shrunk_config(config: str, crop_type: str, **shrink_args: Any) -> Config:
    """The config with a tiny model (``shrink_model(cfg.model, TINY_VIT,
    32, 4, **shrink_args)``) and its one ``crop_type`` transform, which
    every view shares, at 32 px."""
    cfg = Config.fromfile(config)
    shrink_model(cfg.model, shrink_args.pop('arch', TINY_VIT), CROP, 4,
                 **shrink_args)
    pipeline = find_train_pipeline(cfg)
    assert [t.type for t in pipeline].count(crop_type) == 1, \
        'the views share one crop'
    override_pipeline_size(pipeline, CROP)
    return cfg


def data_options(cfg: Config, image_folder: str, imagenet: str,
                 extra: Sequence[str] = ()) -> List[str]:
    """--cfg-options for the stand-in data in the config's own dataset type
    (a class-per-folder ``CustomDataset``: ``image_folder``; ``ImageNet``:
    ``imagenet``, with its annotation file) and a 2-iteration epoch, logged
    and saved after every step."""
    folder = cfg.train_dataloader.dataset.type == 'CustomDataset'
    data_root = image_folder if folder else imagenet
    options = [
        f'train_dataloader.dataset.data_root={data_root}',
        f'train_dataloader.batch_size={BATCH_SIZE}',
        'train_dataloader.num_workers=0',
        'train_cfg.max_epochs=1',
        'default_hooks.checkpoint.interval=1',
        'default_hooks.logger.interval=1',
        *extra,
    ]
    if folder:
        options.append('train_dataloader.dataset.data_prefix=train')
    return options
