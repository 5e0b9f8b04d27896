"""Digit scenes: a small, real-image classification set for demos and tests.

Every image is a real handwritten digit from scikit-learn's ``load_digits``
(1,797 scans, 8×8, 10 classes) pasted onto a real photograph from
scikit-learn's ``load_sample_images`` (two 427×640 photos), so the set needs
no download and is fully determined by its parameters.

One image (``img_size`` × ``img_size``, RGB) is made by

1. cropping a random square (side ``crop_size_range``) out of one of the two
   photographs, resizing it to ``img_size``, blurring it (Gaussian,
   ``blur_radius``) and pulling its contrast towards its mean
   (``background_contrast``);
2. rescaling one digit to a random side in ``digit_size_range`` and using its
   normalised intensity as the alpha mask;
3. drawing a random ink colour whose luminance differs from the mean
   luminance of the background under the digit by at least
   ``min_ink_contrast``, and alpha-blending it at a random position.

The train and val splits use disjoint digits, stratified by class. The output
follows mmpretrain's ``CustomDataset`` folder layout::

    out_dir/
        train/0/*.png ... train/9/*.png
        val/0/*.png   ... val/9/*.png
        meta.json     # parameters, counts, source digit indices

Generation is deterministic: the same parameters give byte-identical PNGs.

:func:`make_digit_scenes_seg` writes the segmentation variant from the same
digits, photographs and drawing steps: several digits per 64 px image, label
maps (0 = background, ``d + 1`` = digit ``d``) in mmseg's ADE20K layout.
"""
import json
import os
import os.path as osp
from typing import Dict, List, NamedTuple, Sequence, Tuple

import numpy as np
from PIL import Image, ImageFilter

# Bump when the drawing procedure changes, so that stale sets get rebuilt.
GENERATOR_VERSION = 1
META_FILENAME = 'meta.json'
CLASS_NAMES = tuple(str(digit) for digit in range(10))
SPLITS = ('train', 'val')
# ITU-R BT.601 luma weights, for "contrast with the local background".
_LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114])
# Random ink colours tried per image (rejection sampling of the contrast).
_INK_CANDIDATES = 1024
_PROGRESS_STEP = 100  # images per progress-bar update


def _load_sources() -> Tuple[np.ndarray, np.ndarray, List[np.ndarray]]:
    """Load scikit-learn's digits and sample photographs.

    Returns:
        tuple: ``digits`` (1797, 8, 8) float in [0, 1], ``labels`` (1797,)
        int, and the list of photographs, each (H, W, 3) uint8.
    """
    from sklearn.datasets import load_digits, load_sample_images

    digits = load_digits()
    photos = load_sample_images().images
    return (digits.images.astype(np.float64) / 16.0,
            digits.target.astype(np.int64), list(photos))


def _proportional_quotas(class_counts: np.ndarray, total: int) -> np.ndarray:
    """Split ``total`` over classes proportionally to ``class_counts``.

    Largest-remainder rounding; ties go to the lower class index.
    """
    exact = class_counts * total / class_counts.sum()
    quotas = np.floor(exact).astype(np.int64)
    remainders = exact - quotas
    order = sorted(range(len(class_counts)), key=lambda c: (-remainders[c], c))
    for c in order[:total - quotas.sum()]:
        quotas[c] += 1
    return quotas


def split_digit_indices(labels: np.ndarray, num_train: int, num_val: int,
                        seed: int) -> Dict[str, np.ndarray]:
    """Stratified, disjoint train / val split of digit indices.

    Args:
        labels (np.ndarray): (N,) class index of every digit.
        num_train (int): Number of train digits.
        num_val (int): Number of val digits; ``num_train + num_val <= N``.
        seed (int): Seed of the shuffle inside each class.

    Returns:
        dict[str, np.ndarray]: ``{'train': (num_train,), 'val': (num_val,)}``
        sorted digit indices; every class gets a share proportional to its
        frequency and no index appears in both splits.
    """
    if num_train < 0 or num_val < 0:
        raise ValueError('num_train and num_val must be >= 0, got '
                         f'num_train={num_train}, num_val={num_val}')
    if num_train + num_val > len(labels):
        raise ValueError(f'num_train + num_val = {num_train + num_val} '
                         f'exceeds the {len(labels)} available digits')
    class_counts = np.bincount(labels, minlength=len(CLASS_NAMES))
    train_quotas = _proportional_quotas(class_counts, num_train)
    val_quotas = _proportional_quotas(class_counts, num_val)
    rng = np.random.default_rng(seed)
    split = {'train': [], 'val': []}
    for c in range(len(class_counts)):
        members = rng.permutation(np.flatnonzero(labels == c))
        if train_quotas[c] + val_quotas[c] > len(members):
            raise ValueError(f'class {c} has {len(members)} digits, fewer '
                             f'than its train + val quota '
                             f'{train_quotas[c]} + {val_quotas[c]}')
        split['train'].append(members[:train_quotas[c]])
        split['val'].append(
            members[train_quotas[c]:train_quotas[c] + val_quotas[c]])
    return {
        name: np.sort(np.concatenate(parts))
        for name, parts in split.items()
    }


class DigitScene(NamedTuple):
    """One rendered scene and how it was composed.

    Attributes:
        image (np.ndarray): (S, S, 3) uint8 RGB scene.
        background (np.ndarray): (S, S, 3) float64 background before the
            digit was drawn.
        alpha (np.ndarray): (S, S) float64 digit opacity in [0, 1] (zero
            outside the digit's box).
        ink (np.ndarray): (3,) float64 RGB ink colour.
    """
    image: np.ndarray
    background: np.ndarray
    alpha: np.ndarray
    ink: np.ndarray


def _luma(rgb: np.ndarray) -> np.ndarray:
    """Luminance in [0, 255] of (..., 3) RGB values in [0, 255]."""
    return rgb @ _LUMA_WEIGHTS


def render_background(photos: Sequence[np.ndarray], rng: np.random.Generator,
                      img_size: int, crop_size_range: Tuple[int, int],
                      blur_radius: float,
                      background_contrast: float) -> np.ndarray:
    """Draw a background: a blurred, contrast-reduced photograph crop.

    Args:
        photos (Sequence[np.ndarray]): Photographs, each (H, W, 3) uint8.
        rng (np.random.Generator): Source of the photo, crop size and place.
        img_size (int): Side of the output.
        crop_size_range (tuple[int, int]): Inclusive range of the side of the
            square crop taken from the photograph.
        blur_radius (float): Gaussian blur radius in output pixels.
        background_contrast (float): Factor in (0, 1] applied to the
            background's deviation from its mean colour.

    Returns:
        np.ndarray: (img_size, img_size, 3) float64 RGB in [0, 255].
    """
    photo = photos[rng.integers(len(photos))]
    height, width = photo.shape[:2]
    crop_size = int(rng.integers(crop_size_range[0], crop_size_range[1] + 1))
    top = int(rng.integers(height - crop_size + 1))
    left = int(rng.integers(width - crop_size + 1))
    crop = Image.fromarray(photo[top:top + crop_size, left:left + crop_size])
    crop = crop.resize((img_size, img_size), Image.Resampling.BILINEAR)
    if blur_radius > 0:
        crop = crop.filter(ImageFilter.GaussianBlur(blur_radius))
    background = np.asarray(crop, dtype=np.float64)
    mean_colour = background.reshape(-1, 3).mean(axis=0)
    return mean_colour + background_contrast * (background - mean_colour)


def digit_alpha(digit: np.ndarray, digit_size: int) -> np.ndarray:
    """The opacity mask of a digit rescaled to ``digit_size`` (bicubic).

    Args:
        digit (np.ndarray): (8, 8) digit intensities in [0, 1].
        digit_size (int): Side of the rescaled digit.

    Returns:
        np.ndarray: (digit_size, digit_size) float64 opacity in [0, 1].
    """
    alpha = Image.fromarray(digit.astype(np.float32), mode='F').resize(
        (digit_size, digit_size), Image.Resampling.BICUBIC)
    return np.clip(np.asarray(alpha, dtype=np.float64), 0.0, 1.0)


def contrasting_ink(local_background: np.ndarray, rng: np.random.Generator,
                    min_ink_contrast: float) -> np.ndarray:
    """A random ink colour that stands out from a background region.

    Args:
        local_background (np.ndarray): (..., 3) float64 RGB background under
            the digit.
        rng (np.random.Generator): Source of the candidate colours.
        min_ink_contrast (float): Minimum luminance difference (0–255)
            between the ink and the mean of ``local_background``.

    Returns:
        np.ndarray: (3,) float64 RGB ink colour: the first of
        ``_INK_CANDIDATES`` uniform random colours that contrasts enough
        (practically always), else the extreme grey on the far side.
    """
    local_luma = _luma(local_background.reshape(-1, 3).mean(axis=0))
    candidates = rng.uniform(0, 255, size=(_INK_CANDIDATES, 3))
    contrasting = np.abs(_luma(candidates) - local_luma) >= min_ink_contrast
    if contrasting.any():
        return candidates[np.argmax(contrasting)]
    return np.full(3, 255.0 if local_luma < 128 else 0.0)


def render_digit_scene(digit: np.ndarray, photos: Sequence[np.ndarray],
                       rng: np.random.Generator, img_size: int,
                       digit_size_range: Tuple[int, int],
                       crop_size_range: Tuple[int, int], blur_radius: float,
                       background_contrast: float,
                       min_ink_contrast: float) -> DigitScene:
    """Draw one digit scene.

    Args:
        digit (np.ndarray): (8, 8) digit intensities in [0, 1].
        photos (Sequence[np.ndarray]): Photographs, each (H, W, 3) uint8.
        rng (np.random.Generator): Source of every random choice.
        img_size (int): Side of the output image.
        digit_size_range (tuple[int, int]): Inclusive range of the digit side.
        crop_size_range (tuple[int, int]): Inclusive range of the side of the
            square crop taken from the photograph.
        blur_radius (float): Gaussian blur radius in output pixels.
        background_contrast (float): Factor in (0, 1] applied to the
            background's deviation from its mean colour.
        min_ink_contrast (float): Minimum luminance difference (0–255) between
            the ink and the mean background under the digit.

    Returns:
        DigitScene: the (img_size, img_size, 3) uint8 RGB image and its
        background, digit opacity and ink colour.
    """
    # 1. Background: blurred, contrast-reduced random crop of a photograph.
    background = render_background(photos, rng, img_size, crop_size_range,
                                   blur_radius, background_contrast)

    # 2. Digit alpha mask at a random size and position.
    digit_size = int(
        rng.integers(digit_size_range[0], digit_size_range[1] + 1))
    alpha = digit_alpha(digit, digit_size)
    top = int(rng.integers(img_size - digit_size + 1))
    left = int(rng.integers(img_size - digit_size + 1))
    region = (slice(top, top + digit_size), slice(left, left + digit_size))

    # 3. Ink colour contrasting with the local background.
    ink = contrasting_ink(background[region], rng, min_ink_contrast)

    full_alpha = np.zeros((img_size, img_size))
    full_alpha[region] = alpha
    scene = (1 - full_alpha[..., None]) * background + \
        full_alpha[..., None] * ink
    image = np.clip(np.rint(scene), 0, 255).astype(np.uint8)
    return DigitScene(image, background, full_alpha, ink)


def _expected_meta(num_train: int, num_val: int, img_size: int, seed: int,
                   digit_size_range: Tuple[int, int],
                   crop_size_range: Tuple[int, int], blur_radius: float,
                   background_contrast: float,
                   min_ink_contrast: float) -> dict:
    return dict(
        generator_version=GENERATOR_VERSION,
        params=dict(
            num_train=num_train,
            num_val=num_val,
            img_size=img_size,
            seed=seed,
            digit_size_range=list(digit_size_range),
            crop_size_range=list(crop_size_range),
            blur_radius=blur_radius,
            background_contrast=background_contrast,
            min_ink_contrast=min_ink_contrast))


def _is_complete(out_dir: str, expected: dict) -> bool:
    """Whether ``out_dir`` holds a complete set made with ``expected``."""
    meta_path = osp.join(out_dir, META_FILENAME)
    if not osp.isfile(meta_path):
        return False
    with open(meta_path) as f:
        meta = json.load(f)
    if any(meta.get(key) != value for key, value in expected.items()):
        return False
    for split in SPLITS:
        for class_name, files in meta['files'][split].items():
            if not all(
                    osp.isfile(osp.join(out_dir, split, class_name, name))
                    for name in files):
                return False
    return True


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
    """Write the digit-scenes classification set (see the module docstring).

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
    if img_size < 8:
        raise ValueError(f'img_size must be >= 8, got {img_size}')
    low, high = digit_size_range
    if not 1 <= low <= high <= img_size:
        raise ValueError('digit_size_range must satisfy 1 <= low <= high <= '
                         f'img_size={img_size}, got {digit_size_range}')
    if not 1 <= crop_size_range[0] <= crop_size_range[1]:
        raise ValueError('crop_size_range must satisfy 1 <= low <= high, got '
                         f'{crop_size_range}')
    if not 0 < background_contrast <= 1:
        raise ValueError('background_contrast must be in (0, 1], got '
                         f'{background_contrast}')
    if not 0 <= min_ink_contrast <= 127:
        raise ValueError('min_ink_contrast must be in [0, 127], got '
                         f'{min_ink_contrast}')

    expected = _expected_meta(num_train, num_val, img_size, seed,
                              tuple(digit_size_range), tuple(crop_size_range),
                              blur_radius, background_contrast,
                              min_ink_contrast)
    if not force and _is_complete(out_dir, expected):
        with open(osp.join(out_dir, META_FILENAME)) as f:
            meta = json.load(f)
        meta['skipped'] = True
        return meta

    digits, labels, photos = _load_sources()
    if crop_size_range[1] > min(min(p.shape[:2]) for p in photos):
        raise ValueError(f'crop_size_range {crop_size_range} exceeds the '
                         'smallest photograph side '
                         f'{min(min(p.shape[:2]) for p in photos)}')
    split_indices = split_digit_indices(labels, num_train, num_val, seed)

    # Remove a stale meta first: an interrupted run must not look complete.
    meta_path = osp.join(out_dir, META_FILENAME)
    if osp.exists(meta_path):
        os.remove(meta_path)

    progress = None
    if show_progress:
        from mmengine.utils import ProgressBar
        progress = ProgressBar(num_train + num_val)
    meta = dict(expected)
    meta.update(counts={}, digit_indices={}, files={})
    for split_code, split in enumerate(SPLITS):
        indices = split_indices[split]
        done_before = progress.completed if progress is not None else 0
        files: Dict[str, List[str]] = {name: [] for name in CLASS_NAMES}
        for class_name in CLASS_NAMES:
            class_dir = osp.join(out_dir, split, class_name)
            os.makedirs(class_dir, exist_ok=True)
            for name in os.listdir(class_dir):  # drop files of an older set
                if name.endswith('.png'):
                    os.remove(osp.join(class_dir, name))
        for count, digit_index in enumerate(indices, start=1):
            # One independent stream per image: (seed, split, digit).
            rng = np.random.default_rng([seed, split_code, int(digit_index)])
            scene = render_digit_scene(
                digits[digit_index], photos, rng, img_size,
                tuple(digit_size_range), tuple(crop_size_range), blur_radius,
                background_contrast, min_ink_contrast).image
            class_name = CLASS_NAMES[labels[digit_index]]
            filename = f'digit_{int(digit_index):04d}.png'
            Image.fromarray(scene).save(
                osp.join(out_dir, split, class_name, filename))
            files[class_name].append(filename)
            at_step = count % _PROGRESS_STEP == 0 or count == len(indices)
            if progress is not None and at_step:
                progress.update(count - progress.completed + done_before)
        meta['counts'][split] = {k: len(v) for k, v in files.items()}
        meta['digit_indices'][split] = [int(i) for i in indices]
        meta['files'][split] = files
    if progress is not None:
        print()
    with open(meta_path, 'w') as f:
        json.dump(meta, f, indent=1)
    meta['skipped'] = False
    return meta


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
    if split not in SPLITS:
        raise ValueError(f'split must be one of {SPLITS}, got {split!r}')
    with open(osp.join(data_root, META_FILENAME)) as f:
        meta = json.load(f)
    images, labels = [], []
    for class_index, class_name in enumerate(CLASS_NAMES):
        for name in meta['files'][split][class_name]:
            with Image.open(osp.join(data_root, split, class_name,
                                     name)) as img:
                images.append(np.asarray(img.convert('RGB')))
            labels.append(class_index)
    return np.stack(images), np.asarray(labels, dtype=np.int64)


# ---------------------------------------------------------------------------
# Segmentation digit scenes (ADE20K layout)
# ---------------------------------------------------------------------------
# Bump when the segmentation drawing changes (independent of the
# classification set's GENERATOR_VERSION).
SEG_GENERATOR_VERSION = 1
#: label 0 is background, label ``d + 1`` is digit ``d`` (no ignore index)
SEG_CLASS_NAMES = ('background', ) + CLASS_NAMES
#: our split name -> ADE20K folder name
SEG_SPLITS = {'train': 'training', 'val': 'validation'}
#: a pixel is labelled with its digit where the digit's opacity is at least
#: this (the ink outweighs the background in the painted colour)
SEG_INK_THRESHOLD = 0.5
# Tag of the per-image random streams: (seed, split, image, tag) never
# equals a classification stream (seed, split, digit).
_SEG_STREAM_TAG = 7


class DigitPlacement(NamedTuple):
    """Where one digit of a segmentation scene was drawn.

    Attributes:
        digit_index (int): index into ``sklearn.datasets.load_digits()``.
        digit_class (int): its class 0–9 (label ``digit_class + 1``).
        top (int): top row of its square box.
        left (int): left column of its square box.
        size (int): side of its box.
    """
    digit_index: int
    digit_class: int
    top: int
    left: int
    size: int


class SegmentationScene(NamedTuple):
    """One rendered segmentation scene.

    Attributes:
        image (np.ndarray): (S, S, 3) uint8 RGB scene.
        label_map (np.ndarray): (S, S) uint8, 0 = background, ``d + 1``
            where digit ``d``'s opacity is >= :data:`SEG_INK_THRESHOLD`.
        alpha (np.ndarray): (S, S) float64 opacity of the digit drawn at each
            pixel (boxes do not overlap, so at most one).
        background (np.ndarray): (S, S, 3) float64 background.
        placements (list[DigitPlacement]): the drawn digits, in drawing
            order.
        inks (np.ndarray): (K, 3) float64 RGB ink of each placed digit.
    """
    image: np.ndarray
    label_map: np.ndarray
    alpha: np.ndarray
    background: np.ndarray
    placements: List[DigitPlacement]
    inks: np.ndarray


def free_box_positions(occupied: np.ndarray, size: int) -> np.ndarray:
    """Top-left corners of ``size`` × ``size`` boxes on free pixels only.

    Args:
        occupied (np.ndarray): (S, S) bool, True where a box already lies.
        size (int): box side.

    Returns:
        np.ndarray: (K, 2) int (top, left) of every box inside the image
        that covers no occupied pixel, in row-major order.
    """
    side = occupied.shape[0]
    if size > side:
        return np.zeros((0, 2), dtype=np.int64)
    # summed-area table with a zero first row / column
    table = np.zeros((side + 1, side + 1), dtype=np.int64)
    table[1:, 1:] = occupied.astype(np.int64).cumsum(0).cumsum(1)
    covered = (table[size:, size:] - table[:-size, size:] -
               table[size:, :-size] + table[:-size, :-size])
    return np.argwhere(covered == 0)


def render_segmentation_scene(digits: np.ndarray, labels: np.ndarray,
                              digit_pool: np.ndarray,
                              photos: Sequence[np.ndarray],
                              rng: np.random.Generator, img_size: int,
                              num_digits_range: Tuple[int, int],
                              digit_size_range: Tuple[int, int],
                              crop_size_range: Tuple[int, int],
                              blur_radius: float, background_contrast: float,
                              min_ink_contrast: float) -> SegmentationScene:
    """Draw several digits on one background, with their label map.

    The background, digit masks and ink colours are those of
    :func:`render_digit_scene`. Then, for each of ``k`` digits (``k``
    uniform in ``num_digits_range``, drawn from ``digit_pool`` without
    replacement): a side uniform in ``digit_size_range``, a box position
    uniform over the positions that overlap no earlier box (the side shrinks
    by one pixel while none is free; a digit that fits nowhere at the
    smallest side is left out), an ink colour contrasting with the
    background under the box, and alpha blending. The label of a pixel is
    ``class + 1`` of the digit whose opacity there is at least
    :data:`SEG_INK_THRESHOLD`, else 0.

    Args:
        digits (np.ndarray): (N, 8, 8) digit intensities in [0, 1].
        labels (np.ndarray): (N,) digit classes.
        digit_pool (np.ndarray): (P,) indices the digits are drawn from.
        photos (Sequence[np.ndarray]): Photographs, each (H, W, 3) uint8.
        rng (np.random.Generator): Source of every random choice.
        img_size (int): Side of the output image.
        num_digits_range (tuple[int, int]): Inclusive range of the number of
            digits.
        digit_size_range (tuple[int, int]): Inclusive range of a digit side.
        crop_size_range (tuple[int, int]): Inclusive range of the background
            photo crop side.
        blur_radius (float): Gaussian blur radius of the background.
        background_contrast (float): Contrast factor in (0, 1] of the
            background.
        min_ink_contrast (float): Minimum luminance difference (0–255)
            between each ink and the mean background under its digit.

    Returns:
        SegmentationScene: image, label map, opacity, background, the
        placements and their inks.
    """
    background = render_background(photos, rng, img_size, crop_size_range,
                                   blur_radius, background_contrast)
    num_digits = int(
        rng.integers(num_digits_range[0], num_digits_range[1] + 1))
    chosen = rng.choice(digit_pool, size=num_digits, replace=False)

    scene = background.copy()
    full_alpha = np.zeros((img_size, img_size))
    label_map = np.zeros((img_size, img_size), dtype=np.uint8)
    occupied = np.zeros((img_size, img_size), dtype=bool)
    placements, inks = [], []
    for digit_index in chosen:
        size = int(rng.integers(digit_size_range[0], digit_size_range[1] + 1))
        positions = free_box_positions(occupied, size)
        while not len(positions) and size > digit_size_range[0]:
            size -= 1
            positions = free_box_positions(occupied, size)
        if not len(positions):
            continue  # no room left for this digit
        top, left = (int(v) for v in positions[rng.integers(len(positions))])
        region = (slice(top, top + size), slice(left, left + size))
        alpha = digit_alpha(digits[digit_index], size)
        ink = contrasting_ink(background[region], rng, min_ink_contrast)
        scene[region] = (1 - alpha[..., None]) * scene[region] + \
            alpha[..., None] * ink
        digit_class = int(labels[digit_index])
        label_map[region][alpha >= SEG_INK_THRESHOLD] = digit_class + 1
        full_alpha[region] = alpha
        occupied[region] = True
        placements.append(
            DigitPlacement(int(digit_index), digit_class, top, left, size))
        inks.append(ink)
    image = np.clip(np.rint(scene), 0, 255).astype(np.uint8)
    return SegmentationScene(image, label_map, full_alpha, background,
                             placements, np.array(inks).reshape(-1, 3))


def _seg_scene_paths(out_dir: str, split: str,
                     name: str) -> Tuple[str, str]:
    """(image, annotation) paths of one scene of an ADE20K-layout set."""
    folder = SEG_SPLITS[split]
    return (osp.join(out_dir, 'images', folder, name + '.jpg'),
            osp.join(out_dir, 'annotations', folder, name + '.png'))


def _is_complete_seg(out_dir: str, expected: dict) -> bool:
    """Whether ``out_dir`` holds a complete seg set made with ``expected``."""
    meta_path = osp.join(out_dir, META_FILENAME)
    if not osp.isfile(meta_path):
        return False
    with open(meta_path) as f:
        meta = json.load(f)
    if any(meta.get(key) != value for key, value in expected.items()):
        return False
    return all(
        osp.isfile(path) for split in SEG_SPLITS
        for scene in meta['scenes'][split]
        for path in _seg_scene_paths(out_dir, split, scene['name']))


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
    pre-training). Layout, as mmseg's ``ADE20KDataset``::

        out_dir/
            images/training/scene_00000.jpg ...      RGB, JPEG
            images/validation/scene_00000.jpg ...
            annotations/training/scene_00000.png ... uint8, 0 = background,
            annotations/validation/scene_00000.png   d + 1 = digit d
            meta.json   # parameters, digit pools, every scene's digits

    JPEG changes pixel values slightly, never the labels. Generation is
    deterministic (one random stream per image).

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
    if img_size < 8:
        raise ValueError(f'img_size must be >= 8, got {img_size}')
    if num_train < 0 or num_val < 0:
        raise ValueError('num_train and num_val must be >= 0, got '
                         f'num_train={num_train}, num_val={num_val}')
    low, high = digit_size_range
    if not 1 <= low <= high <= img_size:
        raise ValueError('digit_size_range must satisfy 1 <= low <= high <= '
                         f'img_size={img_size}, got {digit_size_range}')
    if not 1 <= num_digits_range[0] <= num_digits_range[1]:
        raise ValueError('num_digits_range must satisfy 1 <= low <= high, '
                         f'got {num_digits_range}')
    if num_digits_range[1] > min(num_train_digits, num_val_digits):
        raise ValueError(
            f'num_digits_range {num_digits_range} exceeds a digit pool '
            f'(num_train_digits={num_train_digits}, '
            f'num_val_digits={num_val_digits})')
    if not 1 <= crop_size_range[0] <= crop_size_range[1]:
        raise ValueError('crop_size_range must satisfy 1 <= low <= high, got '
                         f'{crop_size_range}')
    if not 0 < background_contrast <= 1:
        raise ValueError('background_contrast must be in (0, 1], got '
                         f'{background_contrast}')
    if not 0 <= min_ink_contrast <= 127:
        raise ValueError('min_ink_contrast must be in [0, 127], got '
                         f'{min_ink_contrast}')
    if not 1 <= jpeg_quality <= 95:
        raise ValueError(f'jpeg_quality must be in [1, 95], got '
                         f'{jpeg_quality}')

    expected = dict(
        generator_version=SEG_GENERATOR_VERSION,
        params=dict(
            num_train=num_train,
            num_val=num_val,
            img_size=img_size,
            seed=seed,
            num_digits_range=list(num_digits_range),
            digit_size_range=list(digit_size_range),
            crop_size_range=list(crop_size_range),
            blur_radius=blur_radius,
            background_contrast=background_contrast,
            min_ink_contrast=min_ink_contrast,
            num_train_digits=num_train_digits,
            num_val_digits=num_val_digits,
            jpeg_quality=jpeg_quality))
    meta_path = osp.join(out_dir, META_FILENAME)
    if not force and _is_complete_seg(out_dir, expected):
        with open(meta_path) as f:
            meta = json.load(f)
        meta['skipped'] = True
        return meta

    digits, labels, photos = _load_sources()
    smallest_side = min(min(p.shape[:2]) for p in photos)
    if crop_size_range[1] > smallest_side:
        raise ValueError(f'crop_size_range {crop_size_range} exceeds the '
                         f'smallest photograph side {smallest_side}')
    pools = split_digit_indices(labels, num_train_digits, num_val_digits,
                                seed)

    # Remove a stale meta first: an interrupted run must not look complete.
    if osp.exists(meta_path):
        os.remove(meta_path)
    for split in SEG_SPLITS:
        for folder in (osp.dirname(p)
                       for p in _seg_scene_paths(out_dir, split, 'x')):
            os.makedirs(folder, exist_ok=True)
            for name in os.listdir(folder):  # drop files of an older set
                if name.endswith(('.jpg', '.png')):
                    os.remove(osp.join(folder, name))

    total = num_train + num_val
    progress = None
    if show_progress:
        from mmengine.utils import ProgressBar
        progress = ProgressBar(total)
    meta = dict(expected)
    meta.update(
        classes=list(SEG_CLASS_NAMES),
        counts={},
        digit_indices={k: [int(i) for i in v]
                       for k, v in pools.items()},
        scenes={})
    written = 0
    for split_code, (split, count) in enumerate(
            zip(SEG_SPLITS, (num_train, num_val))):
        scenes = []
        for index in range(count):
            rng = np.random.default_rng(
                [seed, split_code, index, _SEG_STREAM_TAG])
            scene = render_segmentation_scene(
                digits, labels, pools[split], photos, rng, img_size,
                tuple(num_digits_range), tuple(digit_size_range),
                tuple(crop_size_range), blur_radius, background_contrast,
                min_ink_contrast)
            name = f'scene_{index:05d}'
            image_path, label_path = _seg_scene_paths(out_dir, split, name)
            Image.fromarray(scene.image).save(
                image_path, quality=jpeg_quality)
            Image.fromarray(scene.label_map, mode='L').save(label_path)
            scenes.append(
                dict(name=name, digits=[list(p) for p in scene.placements]))
            written += 1
            if progress is not None and (written % _PROGRESS_STEP == 0
                                         or written == total):
                progress.update(written - progress.completed)
        meta['counts'][split] = count
        meta['scenes'][split] = scenes
    if progress is not None:
        print()
    with open(meta_path, 'w') as f:
        json.dump(meta, f)
    meta['skipped'] = False
    return meta


def load_digit_scenes_seg(data_root: str,
                          split: str) -> Tuple[np.ndarray, np.ndarray]:
    """Read one split of a segmentation set into memory.

    Args:
        data_root (str): Folder written by :func:`make_digit_scenes_seg`.
        split (str): ``'train'`` or ``'val'``.

    Returns:
        tuple: ``images`` (N, S, S, 3) uint8 RGB and ``label_maps``
        (N, S, S) uint8, in the order of ``meta.json``.
    """
    if split not in SEG_SPLITS:
        raise ValueError(
            f'split must be one of {tuple(SEG_SPLITS)}, got {split!r}')
    with open(osp.join(data_root, META_FILENAME)) as f:
        meta = json.load(f)
    images, label_maps = [], []
    for scene in meta['scenes'][split]:
        image_path, label_path = _seg_scene_paths(data_root, split,
                                                  scene['name'])
        with Image.open(image_path) as img:
            images.append(np.asarray(img.convert('RGB')))
        with Image.open(label_path) as img:
            label_maps.append(np.asarray(img))
    return np.stack(images), np.stack(label_maps)
