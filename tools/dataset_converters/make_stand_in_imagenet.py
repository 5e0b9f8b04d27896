"""Write a stand-in ImageNet train folder of full-size JPEGs, offline.

The data pipelines' cost depends on what they decode: ImageNet's train
images are JPEGs of about 500 x 375 (or 375 x 500) pixels, quality ~90.
This tool cuts such files from the two photographs that scikit-learn ships
(``sklearn.datasets.load_sample_images()``: china.jpg and flower.jpg, 640 x
427), so a data-pipeline benchmark needs neither ImageNet nor a network::

    OUT/train/n01440764/n01440764_0.JPEG
    OUT/train/n01440764/...
    OUT/train/n01443537/n01443537_0.JPEG
    ...
    OUT/meta/train.txt        # "n01440764/n01440764_0.JPEG 0" per line

which mmpretrain's ``ImageNet(data_root=OUT, split='train')`` (and
``CustomDataset(data_root=OUT, data_prefix='train')``) loads. The class
folders are the first ImageNet-1k wnids, so the labels of ``meta/train.txt``
are those classes' ImageNet indices.

Every image is one random cut of a random one of the two photographs:
landscape (500 x 375) with probability 3/4, else portrait (375 x 500); the
photograph is scaled (bicubic) by a random factor between the smallest that
covers the output and 1.5 times that (so portraits are always upsampled),
cropped at a random offset, flipped horizontally with probability 1/2 and
saved with PIL at ``--quality`` (default 90, 4:2:0 chroma subsampling, as
PIL does by default). The same ``--seed`` gives byte-identical files.

Example::

    python tools/dataset_converters/make_stand_in_imagenet.py \
        --out data/stand_in_imagenet --images-per-class 64
"""
import argparse
import shutil
import sys
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

#: The first ImageNet-1k wnids (indices 0, 1, ...), the class folders.
WNIDS = ('n01440764', 'n01443537', 'n01484850', 'n01491361', 'n01494475',
         'n01496331', 'n01498041', 'n01514668', 'n01514859', 'n01518878')
#: (width, height) of the outputs: ImageNet's typical landscape / portrait.
LANDSCAPE = (500, 375)
PORTRAIT = (375, 500)
#: Probability of a landscape output.
LANDSCAPE_PROB = 0.75
#: Largest scale factor, as a multiple of the smallest covering one.
MAX_ZOOM = 1.5


def sample_photographs() -> List[np.ndarray]:
    """scikit-learn's two sample photographs, (427, 640, 3) uint8 RGB."""
    from sklearn.datasets import load_sample_images
    return list(load_sample_images().images)


def cut_image(photo: np.ndarray, size: Tuple[int, int],
              rng: np.random.Generator) -> Image.Image:
    """One random scaled, cropped, maybe flipped cut of ``photo``.

    Args:
        photo: (H, W, 3) uint8 RGB.
        size: Output (width, height).
        rng: Source of the scale, offset and flip.
    """
    width, height = size
    src_height, src_width = photo.shape[:2]
    min_scale = max(width / src_width, height / src_height)
    scale = rng.uniform(min_scale, MAX_ZOOM * min_scale)
    scaled_size = (max(width, round(src_width * scale)),
                   max(height, round(src_height * scale)))
    image = Image.fromarray(photo).resize(scaled_size, Image.BICUBIC)
    left = int(rng.integers(0, scaled_size[0] - width + 1))
    top = int(rng.integers(0, scaled_size[1] - height + 1))
    image = image.crop((left, top, left + width, top + height))
    if rng.random() < 0.5:
        image = image.transpose(Image.FLIP_LEFT_RIGHT)
    return image


def make_stand_in_imagenet(out: str,
                           images_per_class: int = 16,
                           num_classes: int = 2,
                           seed: int = 0,
                           quality: int = 90,
                           overwrite: bool = False) -> List[Path]:
    """Write the folder (see the module docstring).

    Args:
        out: The dataset root to write (``OUT/train``, ``OUT/meta``).
        images_per_class: JPEGs per class folder.
        num_classes: Class folders, at most ``len(WNIDS)``.
        seed: Seed of every random choice.
        quality: JPEG quality.
        overwrite: Replace an existing non-empty ``out``.

    Returns:
        The written image paths, class by class.
    """
    if not 1 <= num_classes <= len(WNIDS):
        raise ValueError(f'num_classes must be in [1, {len(WNIDS)}], got '
                         f'{num_classes}')
    if images_per_class < 1:
        raise ValueError(
            f'images_per_class must be >= 1, got {images_per_class}')
    root = Path(out)
    if root.exists() and any(root.iterdir()):
        if not overwrite:
            raise FileExistsError(f'{root} exists and is not empty (pass '
                                  '--overwrite to replace it)')
        shutil.rmtree(root)
    photos = sample_photographs()
    rng = np.random.default_rng(seed)
    paths, lines = [], []
    for label, wnid in enumerate(WNIDS[:num_classes]):
        folder = root / 'train' / wnid
        folder.mkdir(parents=True, exist_ok=True)
        for index in range(images_per_class):
            photo = photos[int(rng.integers(len(photos)))]
            size = LANDSCAPE if rng.random() < LANDSCAPE_PROB else PORTRAIT
            path = folder / f'{wnid}_{index}.JPEG'
            cut_image(photo, size, rng).save(path, 'JPEG', quality=quality)
            paths.append(path)
            lines.append(f'{wnid}/{path.name} {label}')
    (root / 'meta').mkdir(parents=True, exist_ok=True)
    (root / 'meta' / 'train.txt').write_text('\n'.join(lines) + '\n')
    return paths


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Write a stand-in ImageNet train folder of 500x375 / '
        "375x500 JPEGs cut from scikit-learn's sample photographs")
    parser.add_argument('--out', required=True, help='dataset root to write')
    parser.add_argument('--images-per-class', type=int, default=16)
    parser.add_argument('--classes', type=int, default=2,
                        help=f'class folders (1 to {len(WNIDS)}; default 2)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--quality', type=int, default=90,
                        help='JPEG quality (default 90)')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace an existing non-empty --out')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> List[Path]:
    args = parse_args(argv)
    paths = make_stand_in_imagenet(args.out, args.images_per_class,
                                   args.classes, args.seed, args.quality,
                                   args.overwrite)
    total = sum(path.stat().st_size for path in paths)
    print(f'wrote {len(paths)} JPEGs ({total / len(paths) / 1024:.0f} KiB '
          f'on average, quality {args.quality}) to {args.out}/train and '
          f'{args.out}/meta/train.txt')
    return paths


if __name__ == '__main__':
    main(sys.argv[1:])
