"""The MOMA strong view is a colour-augmented copy of the *same* crop."""
import glob
import os.path as osp
import random

import numpy as np
import pytest
import torch
from mmcv.transforms import Compose
from mmengine.config import Config
from mmengine.registry import init_default_scope

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = sorted(
    glob.glob(osp.join(REPO_ROOT, 'configs', 'moma', '*.py')) +
    glob.glob(osp.join(REPO_ROOT, 'configs', 'demo', 'moma*.py')))
TWO_VIEW_CONFIGS = [
    c for c in CONFIGS
    if 'MultiView' in str(Config.fromfile(c).train_dataloader.dataset)
]


def blob_image(size, rng):
    """Mid-grey image with one white square at a random place."""
    img = np.full((size, size, 3), 100, dtype=np.uint8)
    y, x = rng.integers(size // 4, 3 * size // 4 - size // 8, 2)
    img[y:y + size // 8, x:x + size // 8] = 255
    return img


def blob_centroid(view):
    """Centroid of the pixels that differ most from the view's median."""
    gray = view.float().mean(0).numpy()
    distance = np.abs(gray - np.median(gray))
    ys, xs = np.nonzero(distance >= 0.5 * distance.max())
    return ys.mean(), xs.mean()


def test_there_are_configs_with_a_strong_view():
    assert len(TWO_VIEW_CONFIGS) >= 2  # MoCo->MAE and multi-teacher


def median_blob_shift(pipeline, num_images=30, seed=0):
    """Median centroid shift between the two views, as a fraction of width.

    Blur, solarize and colour jitter move a thresholded centroid a little
    (up to ~10 % of the width on single images), so the median over many
    crops is compared: ~0 for a shared crop, far larger for two crops.
    """
    init_default_scope('mmpretrain')
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    transforms = Compose(pipeline[1:])  # without LoadImageFromFile
    rng = np.random.default_rng(seed)
    shifts = []
    for _ in range(num_images):
        img = blob_image(256, rng)
        original, strong = transforms(dict(img=img, img_shape=img.shape[:2],
                                           ori_shape=img.shape[:2]))['inputs']
        assert original.shape == strong.shape
        if min(np.ptp(v.float().mean(0).numpy())
               for v in (original, strong)) < 1:
            continue  # a crop missed the square
        (y0, x0), (y1, x1) = blob_centroid(original), blob_centroid(strong)
        shifts.append(max(abs(y0 - y1), abs(x0 - x1)) / original.shape[-1])
    assert len(shifts) >= num_images // 2
    return float(np.median(shifts))


@pytest.mark.parametrize('config', TWO_VIEW_CONFIGS,
                         ids=[osp.basename(c) for c in TWO_VIEW_CONFIGS])
def test_strong_view_shares_the_crop(config):
    pipeline = Config.fromfile(config).train_dataloader.dataset.pipeline
    assert pipeline[0]['type'] == 'LoadImageFromFile'
    assert median_blob_shift(pipeline) <= 0.01


def test_the_check_detects_independent_crops():
    """MoCo v3's pipeline crops each view on its own: the check must fail."""
    config = osp.join(REPO_ROOT, 'configs', 'demo',
                      'mocov3_vit-tiny-p4_1xb128-20e_digit-scenes.py')
    pipeline = Config.fromfile(config).train_dataloader.dataset.pipeline
    assert median_blob_shift(pipeline) > 0.05
