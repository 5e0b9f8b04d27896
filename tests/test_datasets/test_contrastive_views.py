"""ContrastiveViews: M-MoCo's strong / medium / light two-view augmentation
(§4.1 of the paper)."""
import random

import numpy as np
import pytest
import torch
from mmcv.transforms import Compose, RandomApply, RandomFlip, RandomGrayscale
from mmpretrain.datasets.transforms import (ColorJitter, GaussianBlur,
                                            RandomResizedCrop, Solarize)
from mmpretrain.registry import TRANSFORMS

from mmmoma.datasets import ContrastiveViews

IDENTITY = [[], []]

# mmcv's colour ops warn on every call with the pillow backend.
pytestmark = pytest.mark.filterwarnings("ignore:Only use 'alpha'")


def seed_all(seed):
    random.seed(seed)
    np.random.seed(seed)


def noise_image(height, width=None, seed=0, grey=False):
    """Random uint8 image (H, W, 3); ``grey`` makes the channels equal."""
    rng = np.random.default_rng(seed)
    channels = 1 if grey else 3
    img = rng.integers(0, 256, (height, width or height, channels),
                       dtype=np.uint8)
    return np.repeat(img, 3, axis=2) if grey else img


def two_views(transform, img):
    return transform(dict(img=img.copy(), img_shape=img.shape[:2]))['img']


def is_monotone_function_of(first, second, tolerance=2):
    """Whether ``second``'s grey level is (up to rounding) a non-decreasing
    function of ``first``'s, pixel by pixel.

    A shared crop under brightness / contrast / grayscale changes passes;
    two different crops of a noise image do not.
    """
    a = first.astype(np.float64).mean(2).ravel()
    b = second.astype(np.float64).mean(2).ravel()
    b_sorted_by_a = b[np.lexsort((b, a))]
    return bool(np.all(np.diff(b_sorted_by_a) >= -tolerance))


def find_diagonal_offset(view, image):
    """The offset o with ``image[o:o + c, o:o + c] == view`` (c the view's
    side), or None."""
    side = view.shape[0]
    for offset in range(image.shape[0] - side + 1):
        if np.array_equal(image[offset:offset + side, offset:offset + side],
                          view):
            return offset
    return None


# ---------------------------------------------------------------- registry
def test_builds_from_the_registry_with_the_paper_defaults():
    transform = TRANSFORMS.build(dict(type='ContrastiveViews'))
    assert isinstance(transform, ContrastiveViews)
    assert transform.mode == 'light'  # the paper's default (Table 8)
    assert transform.crop_size == 224
    crop = transform.random_resized_crop
    assert isinstance(crop, RandomResizedCrop)
    assert crop.scale == (224, 224)
    assert crop.crop_ratio_range == (0.08, 1.0)  # MoCo v3 ViT
    assert crop.backend == 'pillow'
    assert isinstance(transform.random_flip, RandomFlip)
    assert transform.random_flip.prob == 0.5
    # medium: a 256 crop for 224 views
    medium = ContrastiveViews(mode='medium')
    assert medium.random_resized_crop.scale == (256, 256)


# ------------------------------------------------------------------ format
@pytest.mark.parametrize('mode', ContrastiveViews.MODES)
def test_output_is_two_views_that_pack_into_two_tensors(mode):
    seed_all(0)
    img = noise_image(40, 48)
    pipeline = Compose([
        dict(type='ContrastiveViews', mode=mode, crop_size=16, max_shift=8),
        dict(type='PackInputs'),
    ])
    results = dict(img=img, img_shape=img.shape[:2], ori_shape=img.shape[:2],
                   gt_label=3)
    transform = pipeline.transforms[0]
    views = transform(dict(results))
    assert isinstance(views['img'], list) and len(views['img']) == 2
    for view in views['img']:
        assert isinstance(view, np.ndarray)
        assert view.shape == (16, 16, 3) and view.dtype == np.uint8
    assert views['img_shape'] == (16, 16)
    assert views['ori_shape'] == (40, 48) and views['gt_label'] == 3

    packed = pipeline(dict(results))
    inputs = packed['inputs']
    assert isinstance(inputs, list) and len(inputs) == 2
    for view in inputs:
        assert isinstance(view, torch.Tensor)
        assert view.shape == (3, 16, 16) and view.dtype == torch.uint8
    assert packed['data_samples'].gt_label.tolist() == [3]
    assert packed['data_samples'].img_shape == (16, 16)


# ------------------------------------------------------------------- light
def test_light_with_identity_pipelines_gives_two_identical_views():
    transform = ContrastiveViews(
        mode='light', crop_size=16, view_pipelines=IDENTITY)
    seed_all(1)
    for index in range(10):
        first, second = two_views(transform, noise_image(40, seed=index))
        np.testing.assert_array_equal(first, second)


def test_light_shares_the_geometry_and_draws_colour_twice():
    """Default light views: the same crop (each view's grey levels are a
    monotone function of the other's), different colours in most draws."""
    transform = ContrastiveViews(mode='light', crop_size=16)
    seed_all(2)
    num_draws, num_differ = 30, 0
    for index in range(num_draws):
        first, second = two_views(transform,
                                  noise_image(40, seed=index, grey=True))
        assert is_monotone_function_of(first, second)
        assert is_monotone_function_of(second, first)
        num_differ += not np.array_equal(first, second)
    # Both unjittered: ~0.2 * 0.2 = 4 % of the draws.
    assert num_differ >= 0.7 * num_draws


def test_the_geometry_check_detects_different_crops():
    """Control: two independent crops (strong) fail the monotone check."""
    transform = ContrastiveViews(
        mode='strong', crop_size=16, view_pipelines=IDENTITY)
    seed_all(3)
    failures = sum(not is_monotone_function_of(
        *two_views(transform, noise_image(40, seed=index, grey=True)))
                   for index in range(20))
    assert failures >= 18


# ------------------------------------------------------------------ medium
def medium_identity(max_shift, flip_prob=0.):
    """Medium views whose big crop is the whole (square) image, unresized."""
    return ContrastiveViews(
        mode='medium', crop_size=16, max_shift=max_shift,
        crop_scale=(1., 1.), crop_ratio=(1., 1.), flip_prob=flip_prob,
        view_pipelines=IDENTITY)


def test_medium_cuts_two_diagonal_crops_at_most_max_shift_apart():
    max_shift = 8
    transform = medium_identity(max_shift)
    img = noise_image(16 + max_shift)
    seed_all(4)
    distances, first_is_upper_left = [], []
    for _ in range(200):
        first, second = two_views(transform, img)
        offset_first = find_diagonal_offset(first, img)
        offset_second = find_diagonal_offset(second, img)
        assert offset_first is not None and offset_second is not None
        distance = abs(offset_first - offset_second)
        assert 0 <= distance <= max_shift
        upper, lower = ((first, second) if offset_first <= offset_second
                        else (second, first))
        # the views overlap exactly, shifted by d along the diagonal
        np.testing.assert_array_equal(lower[:16 - distance, :16 - distance],
                                      upper[distance:, distance:])
        distances.append(distance)
        if distance > 0:
            first_is_upper_left.append(offset_first < offset_second)
    # d ~ U{0..8}: every distance, the extremes included, occurs
    assert set(distances) == set(range(max_shift + 1))
    # either view gets the upper-left crop, about half of the time each
    assert 0.3 < np.mean(first_is_upper_left) < 0.7


def test_medium_crops_the_flipped_shared_crop():
    transform = medium_identity(max_shift=4, flip_prob=1.)
    img = noise_image(20)
    seed_all(5)
    for _ in range(10):
        for view in two_views(transform, img):
            assert find_diagonal_offset(view, img[:, ::-1]) is not None


def test_medium_without_shift_gives_identical_views():
    transform = ContrastiveViews(
        mode='medium', crop_size=16, max_shift=0, view_pipelines=IDENTITY)
    assert transform.random_resized_crop.scale == (16, 16)
    seed_all(6)
    for index in range(10):
        first, second = two_views(transform, noise_image(40, seed=index))
        np.testing.assert_array_equal(first, second)


def test_medium_default_pipelines_are_colour_only():
    transform = ContrastiveViews(mode='medium')
    for pipeline in transform.view_pipelines:
        assert [type(t) for t in pipeline.transforms] == [
            RandomApply, RandomGrayscale
        ]


# ------------------------------------------------------------------ strong
def test_strong_crops_each_view_independently():
    transform = ContrastiveViews(
        mode='strong', crop_size=16, view_pipelines=IDENTITY)
    seed_all(7)
    num_draws = 30
    num_differ = sum(not np.array_equal(
        *two_views(transform, noise_image(40, seed=index)))
                     for index in range(num_draws))
    assert num_differ >= num_draws - 1


def test_strong_default_pipelines_are_mocov3s_asymmetric_ones():
    transform = ContrastiveViews(mode='strong')
    for pipeline, blur_prob, solarize_prob in zip(transform.view_pipelines,
                                                  (1.0, 0.1), (0.0, 0.2)):
        jitter, grayscale, blur, solarize = pipeline.transforms
        assert isinstance(jitter, RandomApply) and jitter.prob == 0.8
        (color_jitter, ) = jitter.transforms.transforms
        assert isinstance(color_jitter, ColorJitter)
        assert color_jitter.brightness == (0.6, 1.4)
        assert color_jitter.contrast == (0.6, 1.4)
        assert color_jitter.saturation == (0.8, 1.2)
        assert color_jitter.hue == (-0.1, 0.1)
        assert isinstance(grayscale, RandomGrayscale)
        assert grayscale.prob == 0.2 and grayscale.keep_channels
        assert isinstance(blur, GaussianBlur) and blur.prob == blur_prob
        assert blur.magnitude_range == (0.1, 2.0)
        assert isinstance(solarize, Solarize)
        assert solarize.prob == solarize_prob and solarize.thr == 128


def test_user_pipelines_are_built_per_view():
    transform = ContrastiveViews(
        mode='light',
        crop_size=16,
        view_pipelines=[[], [dict(type='Solarize', thr=0, prob=1.)]])
    seed_all(8)
    img = noise_image(40)
    first, second = two_views(transform, img)
    np.testing.assert_array_equal(second, 255 - first)  # thr 0: invert all


# ------------------------------------------------------- reproducibility
@pytest.mark.parametrize('mode', ContrastiveViews.MODES)
def test_same_seed_gives_the_same_views(mode):
    transform = ContrastiveViews(mode=mode, crop_size=16, max_shift=8)
    img = noise_image(40, 48)
    seed_all(9)
    views = two_views(transform, img)
    seed_all(9)
    same = two_views(transform, img)
    seed_all(10)
    other = two_views(transform, img)
    for view, view_again in zip(views, same):
        np.testing.assert_array_equal(view, view_again)
    assert not all(np.array_equal(a, b) for a, b in zip(views, other))


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize('field, value', [
    ('mode', 'heavy'),
    ('crop_size', 0),
    ('crop_size', 16.0),
    ('crop_size', True),
    ('max_shift', -1),
    ('max_shift', 2.5),
    ('view_pipelines', [[]]),
    ('view_pipelines', [[], [], []]),
    ('view_pipelines', dict(type='ColorJitter')),
    ('flip_prob', 1.5),
    ('flip_prob', -0.1),
    ('crop_scale', (0.5, 0.2)),
    ('crop_scale', (0.2, 1.5)),
    ('crop_ratio', (0., 1.)),
    ('backend', 'torch'),
])
def test_bad_config_raises_a_value_error_naming_the_field(field, value):
    with pytest.raises(ValueError, match=f'ContrastiveViews.{field} '):
        ContrastiveViews(**{field: value})


def test_bad_mode_message_lists_the_modes():
    with pytest.raises(
            ValueError,
            match=r"ContrastiveViews.mode must be one of \('strong', "
            r"'medium', 'light'\), got 'heavy'"):
        ContrastiveViews(mode='heavy')
