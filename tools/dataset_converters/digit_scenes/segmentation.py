"""The digit-scenes segmentation set: several digits per image, ADE20K layout.

Layout, as mmseg's ``ADE20KDataset``::

    out_dir/
        images/training/scene_00000.jpg ...      RGB, JPEG
        images/validation/scene_00000.jpg ...
        annotations/training/scene_00000.png ... uint8, 0 = background,
        annotations/validation/scene_00000.png   d + 1 = digit d
        meta.json   # parameters, digit pools, every scene's digits
"""
import os.path as osp
from typing import Any, Dict, Iterable, List, Sequence, Tuple

import numpy as np

from .render import (check_crop_fits, check_scene_params,
                     render_segmentation_scene)
from .sources import CLASS_NAMES, Sources, split_digit_indices
from .writer import (RenderedScene, SceneFile, ScenePlan, SceneSetWriter,
                     read_images, read_split_meta, recorded_params)

# Bump when the segmentation drawing changes (independent of the
# classification set's GENERATOR_VERSION).
SEG_GENERATOR_VERSION = 1
#: label 0 is background, label ``d + 1`` is digit ``d`` (no ignore index)
SEG_CLASS_NAMES = ('background', ) + CLASS_NAMES
#: our split name -> ADE20K folder name
SEG_SPLITS = {'train': 'training', 'val': 'validation'}
# Tag of the per-image random streams: (seed, split, image, tag) never
# equals a classification stream (seed, split, digit).
_SEG_STREAM_TAG = 7


def _scene_files(split: str, name: str) -> Tuple[str, str]:
    """(image, annotation) paths of one scene, relative to the set."""
    folder = SEG_SPLITS[split]
    return (osp.join('images', folder, name + '.jpg'),
            osp.join('annotations', folder, name + '.png'))


class _SegmentationWriter(SceneSetWriter):
    """A JPEG and a label-map PNG per scene; one random stream per image:
    ``(seed, split, image, tag)``. :meth:`plan` sets ``pools``, the digit
    indices each split draws from."""
    generator_version = SEG_GENERATOR_VERSION
    stale_suffixes = ('.jpg', '.png')

    def folders(self) -> List[str]:
        return [
            osp.dirname(path) for split in SEG_SPLITS
            for path in _scene_files(split, 'x')
        ]

    def recorded_files(self, meta: dict) -> Iterable[str]:
        return (path for split in SEG_SPLITS
                for scene in meta['scenes'][split]
                for path in _scene_files(split, scene['name']))

    def plan(self, sources: Sources) -> ScenePlan:
        params = self.params
        check_crop_fits(params['crop_size_range'], sources.photos)
        self.pools = split_digit_indices(sources.labels,
                                         params['num_train_digits'],
                                         params['num_val_digits'],
                                         params['seed'])
        return ScenePlan(
            dict(
                train=range(params['num_train']),
                val=range(params['num_val'])),
            dict(
                classes=list(SEG_CLASS_NAMES),
                counts={},
                digit_indices={k: [int(i) for i in v]
                               for k, v in self.pools.items()},
                scenes={}))

    def render(self, sources: Sources, split: str, split_code: int,
               index: int, item: Any) -> RenderedScene:
        params = self.params
        rng = np.random.default_rng(
            [params['seed'], split_code, index, _SEG_STREAM_TAG])
        scene = render_segmentation_scene(
            sources.digits, sources.labels, self.pools[split],
            sources.photos, rng, params['img_size'],
            tuple(params['num_digits_range']),
            tuple(params['digit_size_range']),
            tuple(params['crop_size_range']), params['blur_radius'],
            params['background_contrast'], params['min_ink_contrast'])
        name = f'scene_{index:05d}'
        image_path, label_path = _scene_files(split, name)
        return RenderedScene([
            SceneFile(
                image_path, scene.image,
                save_options=dict(quality=params['jpeg_quality'])),
            SceneFile(label_path, scene.label_map, mode='L')
        ], dict(name=name, digits=[list(p) for p in scene.placements]))

    def split_meta(self, split: str, items: Sequence,
                   records: List[dict]) -> Dict[str, Any]:
        return dict(counts=len(items), scenes=records)


def make_digit_scenes_seg(out_dir: str,
                          num_train: int = 1000,
                          num_val: int = 200,
                          img_size: int = 64,
                          seed: int = 0,
                          num_digits_range: Tuple[int, int] = (2, 4),
                          digit_size_range: Tuple[int, int] = (16, 28),
                          crop_size_range: Tuple[int, int] = (128, 384),
                          blur_radius: float = 2.0,
                          background_contrast: float = 0.3,
                          min_ink_contrast: float = 100.0,
                          num_train_digits: int = 1300,
                          num_val_digits: int = 497,
                          jpeg_quality: int = 90,
                          force: bool = False,
                          show_progress: bool = True) -> dict:
    """Write the digit-scenes segmentation set in ADE20K layout.

    Several real digits per image (:func:`render_segmentation_scene`) on the
    photographs of the classification set. The train and val scenes draw
    their digits from disjoint pools: :func:`split_digit_indices` with
    ``num_train_digits`` / ``num_val_digits`` and ``seed`` (by default the
    very split of the classification set, so no val digit is ever seen in
    pre-training). Layout: see the module docstring. JPEG changes pixel
    values slightly, never the labels. Generation is deterministic (one
    random stream per image).

    Args:
        out_dir (str): Output folder.
        num_train (int): Train scenes. Defaults to 1000.
        num_val (int): Val scenes. Defaults to 200.
        img_size (int): Image side in pixels. Defaults to 64.
        seed (int): Seed of the digit split and of every drawing choice.
            Defaults to 0.
        num_digits_range (tuple[int, int]): Inclusive range of the digits per
            scene. Defaults to (2, 4).
        digit_size_range (tuple[int, int]): Inclusive range of a digit's
            side; ``high + 2 * low <= img_size`` guarantees that two digits
            always fit. Defaults to (16, 28).
        crop_size_range (tuple[int, int]): Inclusive range of the photo crop
            side. Defaults to (128, 384).
        blur_radius (float): Gaussian blur radius of the background, in
            output pixels. Defaults to 2.0.
        background_contrast (float): Contrast factor in (0, 1] of the
            background. Defaults to 0.3.
        min_ink_contrast (float): Minimum luminance difference (0–255)
            between ink and local background. Defaults to 100.
        num_train_digits (int): Size of the train digit pool.
            Defaults to 1300.
        num_val_digits (int): Size of the val digit pool (disjoint).
            Defaults to 497.
        jpeg_quality (int): JPEG quality 1–95. Defaults to 90.
        force (bool): Regenerate even if ``out_dir`` holds a complete set
            made with the same parameters. Regenerating deletes the .jpg /
            .png files in the four split folders. Defaults to False.
        show_progress (bool): Show a progress bar. Defaults to True.

    Returns:
        dict: The content of ``meta.json`` (``generator_version``,
        ``params``, ``classes``, ``counts``, ``digit_indices`` (the two
        pools), ``scenes`` (per split: ``name`` and ``digits``, each
        ``[digit_index, class, top, left, size]``)), plus ``skipped``.
    """
    # first statement: locals() holds the arguments only
    params = recorded_params(locals())
    check_scene_params(img_size, digit_size_range, crop_size_range,
                       background_contrast, min_ink_contrast)
    if num_train < 0 or num_val < 0:
        raise ValueError('num_train and num_val must be >= 0, got '
                         f'num_train={num_train}, num_val={num_val}')
    if not 1 <= num_digits_range[0] <= num_digits_range[1]:
        raise ValueError('num_digits_range must satisfy 1 <= low <= high, '
                         f'got {num_digits_range}')
    if num_digits_range[1] > min(num_train_digits, num_val_digits):
        raise ValueError(
            f'num_digits_range {num_digits_range} exceeds a digit pool '
            f'(num_train_digits={num_train_digits}, '
            f'num_val_digits={num_val_digits})')
    if not 1 <= jpeg_quality <= 95:
        raise ValueError(f'jpeg_quality must be in [1, 95], got '
                         f'{jpeg_quality}')
    return _SegmentationWriter(out_dir, params).write(force, show_progress)


def load_digit_scenes_seg(data_root: str,
                          split: str) -> Tuple[np.ndarray, np.ndarray]:
    """Read one split of a segmentation set into memory.

    Args:
        data_root (str): Folder written by :func:`make_digit_scenes_seg`.
        split (str): ``'train'`` (the ``training`` folders) or ``'val'``
            (the ``validation`` folders).

    Returns:
        tuple: ``images`` (N, S, S, 3) uint8 RGB, as decoded from the
        JPEGs, and ``label_maps`` (N, S, S) uint8 (0 = background,
        ``d + 1`` = digit ``d``), in the order of ``meta.json``.
    """
    meta = read_split_meta(data_root, split, SEG_SPLITS)
    files = [
        _scene_files(split, scene['name']) for scene in meta['scenes'][split]
    ]
    return (read_images(data_root, [image for image, _ in files], 'RGB'),
            read_images(data_root, [label for _, label in files]))
