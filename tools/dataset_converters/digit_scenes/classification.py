"""The digit-scenes classification set: one digit per image.

Layout, as mmpretrain's ``CustomDataset`` folders::

    out_dir/
        train/0/*.png ... train/9/*.png
        val/0/*.png   ... val/9/*.png
        meta.json     # parameters, counts, source digit indices
"""
import os.path as osp
from typing import Any, Dict, Iterable, List, Sequence, Tuple

import numpy as np

from .render import check_crop_fits, check_scene_params, render_digit_scene
from .sources import CLASS_NAMES, Sources, split_digit_indices
from .writer import (SPLITS, RenderedScene, SceneFile, ScenePlan,
                     SceneSetWriter, read_images, read_split_meta,
                     recorded_params)

# Bump when the drawing procedure changes, so that stale sets get rebuilt.
GENERATOR_VERSION = 1


class _ClassificationWriter(SceneSetWriter):
    """One PNG per digit, in a folder per class; one random stream per
    image: ``(seed, split, digit)``."""
    generator_version = GENERATOR_VERSION
    stale_suffixes = ('.png', )
    meta_indent = 1

    def folders(self) -> List[str]:
        return [
            osp.join(split, class_name) for split in SPLITS
            for class_name in CLASS_NAMES
        ]

    def recorded_files(self, meta: dict) -> Iterable[str]:
        return (osp.join(split, class_name, name) for split in SPLITS
                for class_name, files in meta['files'][split].items()
                for name in files)

    def plan(self, sources: Sources) -> ScenePlan:
        params = self.params
        check_crop_fits(params['crop_size_range'], sources.photos)
        split_indices = split_digit_indices(sources.labels,
                                            params['num_train'],
                                            params['num_val'], params['seed'])
        return ScenePlan(split_indices,
                         dict(counts={}, digit_indices={}, files={}))

    def render(self, sources: Sources, split: str, split_code: int,
               index: int, item: Any) -> RenderedScene:
        params, digit_index = self.params, int(item)
        rng = np.random.default_rng([params['seed'], split_code, digit_index])
        image = render_digit_scene(
            sources.digits[digit_index], sources.photos, rng,
            params['img_size'], tuple(params['digit_size_range']),
            tuple(params['crop_size_range']), params['blur_radius'],
            params['background_contrast'], params['min_ink_contrast']).image
        class_name = CLASS_NAMES[sources.labels[digit_index]]
        filename = f'digit_{digit_index:04d}.png'
        return RenderedScene(
            [SceneFile(osp.join(split, class_name, filename), image)],
            (class_name, filename))

    def split_meta(self, split: str, items: Sequence,
                   records: List[Tuple[str, str]]) -> Dict[str, Any]:
        files: Dict[str, List[str]] = {name: [] for name in CLASS_NAMES}
        for class_name, filename in records:
            files[class_name].append(filename)
        return dict(
            counts={k: len(v)
                    for k, v in files.items()},
            digit_indices=[int(i) for i in items],
            files=files)


def make_digit_scenes(out_dir: str,
                      num_train: int = 1300,
                      num_val: int = 497,
                      img_size: int = 32,
                      seed: int = 0,
                      digit_size_range: Tuple[int, int] = (22, 30),
                      crop_size_range: Tuple[int, int] = (64, 192),
                      blur_radius: float = 1.0,
                      background_contrast: float = 0.3,
                      min_ink_contrast: float = 100.0,
                      force: bool = False,
                      show_progress: bool = True) -> dict:
    """Write the digit-scenes classification set (see the package docstring).

    Args:
        out_dir (str): Output folder (``train/``, ``val/``, ``meta.json``).
        num_train (int): Train images, one per distinct digit.
            Defaults to 1300.
        num_val (int): Val images, from digits disjoint from the train ones;
            ``num_train + num_val <= 1797``. Defaults to 497.
        img_size (int): Image side in pixels. Defaults to 32.
        seed (int): Seed of the split and of every drawing choice.
            Defaults to 0.
        digit_size_range (tuple[int, int]): Inclusive range of the rescaled
            digit's side; must fit in ``img_size``. Defaults to (22, 30).
        crop_size_range (tuple[int, int]): Inclusive range of the side of the
            photo crop used as background. Defaults to (64, 192).
        blur_radius (float): Gaussian blur radius of the background, in output
            pixels. Defaults to 1.0.
        background_contrast (float): Contrast factor in (0, 1] of the
            background. Defaults to 0.3.
        min_ink_contrast (float): Minimum luminance difference (0–255) between
            ink and local background. Defaults to 100.
        force (bool): Regenerate even if ``out_dir`` already holds a complete
            set with the same parameters. Defaults to False. Regenerating
            deletes the PNG files in ``out_dir/{train,val}/<class>/``.
        show_progress (bool): Show a progress bar. Defaults to True.

    Returns:
        dict: The content of ``meta.json``: ``generator_version``, ``params``,
        ``counts`` (per split and class), ``digit_indices`` (per split, the
        source indices into ``sklearn.datasets.load_digits()``) and ``files``
        (per split and class), plus ``skipped`` (True when an existing set
        was kept).
    """
    # first statement: locals() holds the arguments only
    params = recorded_params(locals())
    check_scene_params(img_size, digit_size_range, crop_size_range,
                       background_contrast, min_ink_contrast)
    return _ClassificationWriter(out_dir, params).write(force, show_progress)


def load_digit_scenes(data_root: str,
                      split: str) -> Tuple[np.ndarray, np.ndarray]:
    """Read one split of a generated set into memory.

    Args:
        data_root (str): Folder written by :func:`make_digit_scenes`.
        split (str): ``'train'`` or ``'val'``.

    Returns:
        tuple: ``images`` (N, H, W, 3) uint8 RGB and ``labels`` (N,) int64,
        in the order of ``meta.json``.
    """
    meta = read_split_meta(data_root, split, SPLITS)
    labelled = [(osp.join(split, class_name, name), class_index)
                for class_index, class_name in enumerate(CLASS_NAMES)
                for name in meta['files'][split][class_name]]
    images = read_images(data_root, [path for path, _ in labelled], 'RGB')
    return images, np.asarray([label for _, label in labelled],
                              dtype=np.int64)
