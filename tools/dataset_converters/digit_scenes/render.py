"""Drawing digit scenes: backgrounds, digit masks, ink and placements.

A scene is a blurred, contrast-reduced photograph crop with one or several
real digits alpha-blended onto it, each in an ink colour that stands out
from the background under it. Every random choice comes from the
``np.random.Generator`` passed in, so a scene is fully determined by its
arguments.
"""
from typing import List, NamedTuple, Sequence, Tuple

import numpy as np
from PIL import Image, ImageFilter

#: a pixel is labelled with its digit where the digit's opacity is at least
#: this (the ink outweighs the background in the painted colour)
SEG_INK_THRESHOLD = 0.5
# ITU-R BT.601 luma weights, for "contrast with the local background".
_LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114])
# Random ink colours tried per image (rejection sampling of the contrast).
_INK_CANDIDATES = 1024


def check_scene_params(img_size: int, digit_size_range: Tuple[int, int],
                       crop_size_range: Tuple[int, int],
                       background_contrast: float,
                       min_ink_contrast: float) -> None:
    """Reject drawing parameters that cannot make a scene.

    Args:
        img_size (int): Side of the image; at least 8.
        digit_size_range (tuple[int, int]): Inclusive range of a digit side,
            ``1 <= low <= high <= img_size``.
        crop_size_range (tuple[int, int]): Inclusive range of the photo crop
            side, ``1 <= low <= high``.
        background_contrast (float): Contrast factor in (0, 1].
        min_ink_contrast (float): Luminance difference in [0, 127].

    Raises:
        ValueError: naming the first argument out of its range.
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


def check_crop_fits(crop_size_range: Tuple[int, int],
                    photos: Sequence[np.ndarray]) -> None:
    """Reject a crop side larger than the smallest photograph side.

    Args:
        crop_size_range (tuple[int, int]): Inclusive range of the crop side.
        photos (Sequence[np.ndarray]): Photographs, each (H, W, 3) uint8.

    Raises:
        ValueError: if ``crop_size_range[1]`` does not fit in every photo.
    """
    smallest_side = min(min(p.shape[:2]) for p in photos)
    if crop_size_range[1] > smallest_side:
        raise ValueError(f'crop_size_range {crop_size_range} exceeds the '
                         f'smallest photograph side {smallest_side}')


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


def luma(rgb: np.ndarray) -> np.ndarray:
    """Luminance of RGB values.

    Args:
        rgb (np.ndarray): (..., 3) RGB values in [0, 255].

    Returns:
        np.ndarray: (...) luminance in [0, 255].
    """
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
    local_luma = luma(local_background.reshape(-1, 3).mean(axis=0))
    candidates = rng.uniform(0, 255, size=(_INK_CANDIDATES, 3))
    contrasting = np.abs(luma(candidates) - local_luma) >= min_ink_contrast
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
