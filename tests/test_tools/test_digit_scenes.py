"""The embedded digit-scenes demo set (tools/dataset_converters/digit_scenes).

The skip / rewrite contract both kinds share: test_digit_scenes_writer.py.
"""
import json
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.datasets import load_digits, load_sample_images

from mmmoma.evaluation import weighted_knn_top1
from tools.dataset_converters.digit_scenes import (CLASS_NAMES,
                                                   load_digit_scenes,
                                                   make_digit_scenes)
from tools.dataset_converters.digit_scenes.render import (luma,
                                                          render_digit_scene)
from tools.dataset_converters.digit_scenes.sources import split_digit_indices

from .utils import PROGRESS_BAR

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
IMAGENET_MEAN = np.array([123.675, 116.28, 103.53])
IMAGENET_STD = np.array([58.395, 57.12, 57.375])


def png_files(root):
    return sorted(
        osp.relpath(osp.join(d, f), root) for d, _, files in os.walk(root)
        for f in files if f.endswith('.png'))


@pytest.fixture(scope='module')
def small_set(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('scenes'))
    meta = make_digit_scenes(
        root, num_train=60, num_val=30, show_progress=False)
    return root, meta


def test_split_is_stratified_and_disjoint():
    labels = load_digits().target
    split = split_digit_indices(labels, 1300, 497, seed=0)
    train, val = split['train'], split['val']
    assert len(train) == 1300 and len(val) == 497
    assert len(set(train)) == 1300 and not set(train) & set(val)
    class_counts = np.bincount(labels)
    for name, indices in split.items():
        share = len(indices) / len(labels)
        counts = np.bincount(labels[indices], minlength=10)
        assert np.all(np.abs(counts - class_counts * share) < 1), name
    with pytest.raises(ValueError, match='exceeds'):
        split_digit_indices(labels, 1300, 498, seed=0)


def test_generation_is_deterministic(tmp_path, small_set):
    root, _ = small_set
    again = str(tmp_path / 'again')
    make_digit_scenes(again, num_train=60, num_val=30, show_progress=False)
    files = png_files(root)
    assert files == png_files(again) and len(files) == 90
    for name in files:
        with open(osp.join(root, name), 'rb') as a, \
                open(osp.join(again, name), 'rb') as b:
            assert a.read() == b.read(), name
    other_seed = str(tmp_path / 'seed1')
    make_digit_scenes(
        other_seed, num_train=60, num_val=30, seed=1, show_progress=False)
    assert load_digit_scenes(other_seed, 'val')[0].tobytes() != \
        load_digit_scenes(root, 'val')[0].tobytes()


def test_layout_counts_and_disjoint_digits(small_set):
    root, meta = small_set
    digit_labels = load_digits().target
    for split, total in (('train', 60), ('val', 30)):
        assert sorted(os.listdir(osp.join(root, split))) == list(CLASS_NAMES)
        counts = meta['counts'][split]
        assert sum(counts.values()) == total
        assert all(count in (total // 10, total // 10 + 1)
                   for count in counts.values())
        for class_name in CLASS_NAMES:
            files = os.listdir(osp.join(root, split, class_name))
            assert len(files) == counts[class_name]
            # each file is named after its source digit, of this class
            for name in files:
                digit_index = int(name[len('digit_'):-len('.png')])
                assert digit_labels[digit_index] == int(class_name)
                assert digit_index in meta['digit_indices'][split]
    assert not (set(meta['digit_indices']['train'])
                & set(meta['digit_indices']['val']))
    with open(osp.join(root, 'meta.json')) as f:
        on_disk = json.load(f)
    assert on_disk['params']['num_train'] == 60
    assert on_disk['counts'] == meta['counts']


def test_images_are_32px_rgb_and_not_constant(small_set):
    root, _ = small_set
    for name in png_files(root):
        with Image.open(osp.join(root, name)) as img:
            assert img.mode == 'RGB' and img.size == (32, 32)
            pixels = np.asarray(img, dtype=np.float64)
        assert pixels.std() > 10, name
    images, labels = load_digit_scenes(root, 'train')
    assert images.shape == (60, 32, 32, 3) and images.dtype == np.uint8
    assert np.array_equal(np.bincount(labels), [6] * 10)


def test_digit_contrasts_with_its_background():
    digits = load_digits().images / 16.0
    photos = load_sample_images().images
    for index in range(0, 1797, 60):
        scene = render_digit_scene(
            digits[index], photos, np.random.default_rng(index), 32,
            (22, 30), (64, 192), 1.0, 0.3, 100.0)
        strokes = scene.alpha >= 0.9
        assert strokes.sum() >= 10
        box = scene.alpha > 0
        rows = np.flatnonzero(box.any(axis=1))
        assert 16 <= rows[-1] - rows[0] + 1 <= 30  # 22-30 px digit
        # the ink, and the pixels drawn with it, stand out from the
        # background under the digit
        local = luma(scene.background[box].mean(axis=0))
        assert abs(luma(scene.ink) - local) >= 90
        stroke_luma = luma(scene.image[strokes].astype(np.float64))
        background_luma = luma(scene.background[strokes])
        assert np.abs(stroke_luma - background_luma).mean() >= 80
        assert np.array_equal(scene.image[~box],
                              np.rint(scene.background[~box]))


def test_invalid_parameters_name_the_argument(tmp_path):
    with pytest.raises(ValueError, match='digit_size_range'):
        make_digit_scenes(str(tmp_path), digit_size_range=(22, 40))
    with pytest.raises(ValueError, match='background_contrast'):
        make_digit_scenes(str(tmp_path), background_contrast=0)
    with pytest.raises(ValueError, match='num_train'):
        make_digit_scenes(str(tmp_path), num_train=-1)
    with pytest.raises(ValueError, match='crop_size_range'):
        make_digit_scenes(str(tmp_path), crop_size_range=(64, 1000))


def test_command_line(tmp_path):
    out = str(tmp_path / 'cli')
    cmd = [
        sys.executable, 'tools/dataset_converters/make_digit_scenes.py',
        '--out', out, '--num-train', '20', '--num-val', '10'
    ]
    proc = subprocess.run(
        cmd,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, PYTHONPATH=REPO_ROOT))
    assert proc.returncode == 0, proc.stderr
    assert 'wrote digit scenes' in proc.stdout and '20 train / 10 val' in \
        proc.stdout
    assert len(png_files(out)) == 30
    assert PROGRESS_BAR.search(proc.stdout), proc.stdout  # data preparation


def test_raw_pixel_knn_on_default_set(tmp_path):
    """Difficulty of the default set: report the raw-pixel kNN top-1."""
    root = str(tmp_path / 'default')
    make_digit_scenes(root, show_progress=False)

    def pixels(split):
        images, labels = load_digit_scenes(root, split)
        normalised = (images - IMAGENET_MEAN) / IMAGENET_STD
        return torch.from_numpy(normalised).flatten(1), torch.from_numpy(
            labels)

    train_feats, train_labels = pixels('train')
    val_feats, val_labels = pixels('val')
    assert len(train_labels) == 1300 and len(val_labels) == 497
    top1 = weighted_knn_top1(train_feats, train_labels, val_feats,
                             val_labels)
    print(f'raw-pixel kNN top-1 on the default digit scenes: {top1:.2f} %')
    # Measured 50.70 % (chance 10 %); loose bounds: learnable, not trivial.
    assert 25 < top1 < 75
