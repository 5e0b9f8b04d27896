"""Draw which patches each encoder sees, for any config in configs/.

For every CONFIG the tool runs the config's own train dataset and pipeline on
``--images`` images (picked at random with ``--seed``), builds the config's
model (structure only: no checkpoint is read, so paper configs work without
their teacher files) and asks the model's own masking methods, the ones its
``loss`` calls, for one batch of masks (see
:mod:`mmmoma.visualization.masking`). It writes ``OUT/<config>.png``: one row
per image; columns: the input view, then what each encoder sees (MOMA: the
student's ~10 % visible patches and the teachers' full view; SdAE: the
visible patches and the teacher's folds, one colour per fold; MimCo: the
SimMIM mask and the teacher's full view; M-MoCo / M-BYOL: the online
encoder's chunks, one colour per chunk, and the momentum encoder's view,
whole or in m target chunks; mmpretrain MAE: the visible patches; MoCo v3,
fine-tuning and segmentation configs: whole views).

Usage::

    python tools/analysis/visualize_masking.py CONFIG [CONFIG ...] \\
        [--images 4] [--out work_dirs/masking] [--img-size S] [--seed 0] \\
        [--cfg-options KEY=VALUE ...]

``--img-size S`` sets the output size of the pipeline's crop / resize steps
(the keys in ``mmmoma.utils.config_tools.CROP_SIZE_KEYS``) to S px, e.g. to
look at a 224 px config on small images; ``--cfg-options`` (applied to every
config) points a config at another data root:
``--cfg-options train_dataloader.dataset.data_root=data/my_images``.
"""
import argparse
import copy
import os
import os.path as osp
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.config import Config, DictAction
from mmengine.registry import DATASETS, MODELS, init_default_scope
from mmengine.utils import ProgressBar

import mmmoma  # noqa: F401  (registers components)
from mmmoma.models.utils.frozen_teacher import teachers_without_weights
from mmmoma.utils.config_tools import (find_train_pipeline, load_config,
                                       override_pipeline_size)
from mmmoma.visualization import (MaskingFigure, masking_panels,
                                  render_masking_figure)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Draw the masks / folds / chunks of pre-training '
        'configs on images of their own data pipeline.')
    parser.add_argument('configs', nargs='+', metavar='CONFIG',
                        help='config file(s), or package::path')
    parser.add_argument('--images', type=int, default=4,
                        help='images per figure (default 4)')
    parser.add_argument('--out', default='work_dirs/masking',
                        help='output folder (default work_dirs/masking)')
    parser.add_argument('--img-size', type=int, default=None,
                        help='set the pipeline crop / resize size (px)')
    parser.add_argument('--seed', type=int, default=0,
                        help='picks the images and draws the masks')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config fields (all configs)')
    args = parser.parse_args(argv)
    if args.images < 1:
        parser.error(f'--images must be >= 1, got {args.images}')
    if args.img_size is not None and args.img_size < 1:
        parser.error(f'--img-size must be >= 1, got {args.img_size}')
    return args


def prepare_config(path: str,
                   img_size: Optional[int] = None,
                   cfg_options: Optional[dict] = None) -> Config:
    """Load a config, apply ``cfg_options``, resize its train pipeline."""
    cfg = load_config(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if img_size is not None:
        for change in override_pipeline_size(find_train_pipeline(cfg),
                                             img_size):
            print(f'  {change}')
    return cfg


def is_bgr_input(cfg: Config) -> bool:
    """Whether the pipeline's images are BGR (the data preprocessor turns
    them into RGB: mmpretrain ``to_rgb``, mmseg ``bgr_to_rgb``)."""
    preprocessor = cfg.model.get('data_preprocessor') or cfg.get(
        'data_preprocessor') or {}
    return bool(preprocessor.get('to_rgb') or preprocessor.get('bgr_to_rgb'))


def load_views(cfg: Config, num_images: int, seed: int) -> List[torch.Tensor]:
    """``num_images`` random samples of the config's train dataset, through
    its pipeline.

    Returns:
        list[Tensor]: the views, each (B, 3, H, W) uint8 RGB.
    """
    dataset = DATASETS.build(copy.deepcopy(cfg.train_dataloader.dataset))
    if len(dataset) == 0:
        raise ValueError('the train dataset is empty '
                         f'({cfg.train_dataloader.dataset.get("data_root")})')
    rng = np.random.default_rng(seed)
    indices = rng.choice(len(dataset), min(num_images, len(dataset)),
                         replace=False)
    views_per_sample = []
    progress = ProgressBar(len(indices))
    for index in indices:
        inputs = dataset[int(index)]['inputs']
        views_per_sample.append(
            list(inputs) if isinstance(inputs, (list, tuple)) else [inputs])
        progress.update()
    print()
    views = [
        torch.stack([sample[view] for sample in views_per_sample])
        for view in range(len(views_per_sample[0]))
    ]
    if is_bgr_input(cfg):
        views = [view.flip(1) for view in views]
    return [view.to(torch.uint8) for view in views]


def build_model(cfg: Config) -> torch.nn.Module:
    """The config's model, structure only: no ``init_weights``, and frozen
    teachers do not read their checkpoints."""
    with teachers_without_weights():
        return MODELS.build(copy.deepcopy(cfg.model))


def visualize(path: str,
              out_dir: str,
              num_images: int = 4,
              img_size: Optional[int] = None,
              seed: int = 0,
              cfg_options: Optional[dict] = None
              ) -> Tuple[str, MaskingFigure]:
    """Write the masking figure of one config.

    Returns:
        tuple[str, MaskingFigure]: the PNG path, ``out_dir/<config
        name>.png``, and the figure's panels.
    """
    cfg = prepare_config(path, img_size, cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    views = load_views(cfg, num_images, seed)
    model = build_model(cfg)
    generator = torch.Generator().manual_seed(seed)
    figure = masking_panels(model, views, generator)
    name = osp.splitext(osp.basename(path))[0]
    os.makedirs(out_dir, exist_ok=True)
    out_file = osp.join(out_dir, f'{name}.png')
    render_masking_figure(figure, name, out_file)
    return out_file, figure


def main(argv: Optional[Sequence[str]] = None) -> List[str]:
    args = parse_args(argv)
    written = []
    for number, path in enumerate(args.configs, 1):
        print(f'[{number}/{len(args.configs)}] {path}', flush=True)
        out_file, _ = visualize(path, args.out, args.images,
                                args.img_size, args.seed, args.cfg_options)
        print(f'  wrote {out_file}', flush=True)
        written.append(out_file)
    return written


if __name__ == '__main__':
    main()
