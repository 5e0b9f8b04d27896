"""The digit-scenes segmentation set (ADE20K layout).

The skip / rewrite contract both kinds share: test_digit_scenes_writer.py.
"""
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
from mmengine.config import Config
from mmengine.registry import DefaultScope
from PIL import Image
from sklearn.datasets import load_digits, load_sample_images

from tools.dataset_converters.digit_scenes import (SEG_CLASS_NAMES,
                                                   load_digit_scenes_seg,
                                                   make_digit_scenes_seg)
from tools.dataset_converters.digit_scenes.render import (
    SEG_INK_THRESHOLD, digit_alpha, free_box_positions, luma,
    render_segmentation_scene)
from tools.dataset_converters.digit_scenes.sources import split_digit_indices

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DATASET_CONFIG = osp.join(REPO_ROOT, 'configs', '_base_', 'datasets',
                          'digit_scenes_seg.py')
NUM_TRAIN, NUM_VAL = 40, 16


def scene_files(root):
    return sorted(
        osp.relpath(osp.join(d, f), root) for d, _, files in os.walk(root)
        for f in files if f.endswith(('.jpg', '.png')))


@pytest.fixture(scope='module')
def seg_set(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('seg_scenes'))
    meta = make_digit_scenes_seg(
        root, num_train=NUM_TRAIN, num_val=NUM_VAL, show_progress=False)
    return root, meta


def test_ade20k_layout_and_label_values(seg_set):
    root, meta = seg_set
    assert meta['classes'] == list(SEG_CLASS_NAMES) and len(
        SEG_CLASS_NAMES) == 11
    all_labels = set()
    for split, folder, count in (('train', 'training', NUM_TRAIN),
                                 ('val', 'validation', NUM_VAL)):
        images = sorted(os.listdir(osp.join(root, 'images', folder)))
        annotations = sorted(
            os.listdir(osp.join(root, 'annotations', folder)))
        assert len(images) == count == meta['counts'][split]
        assert [n[:-4] for n in images] == [n[:-4] for n in annotations]
        assert all(n.endswith('.jpg') for n in images)
        for scene in meta['scenes'][split]:
            path = osp.join(root, 'annotations', folder,
                            scene['name'] + '.png')
            with Image.open(path) as img:
                assert img.mode == 'L' and img.size == (64, 64)
                label_map = np.asarray(img)
            assert label_map.dtype == np.uint8
            # exactly the background and the classes of the drawn digits
            assert set(np.unique(label_map)) == {0} | {
                cls + 1 for _, cls, *_ in scene['digits']
            }
            all_labels |= set(np.unique(label_map).tolist())
            with Image.open(osp.join(root, 'images', folder,
                                     scene['name'] + '.jpg')) as img:
                assert img.mode == 'RGB' and img.size == (64, 64)
    assert all_labels == set(range(11))


def test_label_maps_are_the_thresholded_ink_of_the_recorded_digits(seg_set):
    """Rebuild every label map from meta.json's placements and the source
    digits: the PNG on disk is exactly that."""
    root, meta = seg_set
    digits = load_digits()
    for split in ('train', 'val'):
        images, label_maps = load_digit_scenes_seg(root, split)
        for scene, image, label_map in zip(meta['scenes'][split], images,
                                           label_maps):
            expected = np.zeros((64, 64), np.uint8)
            for index, cls, top, left, size in scene['digits']:
                assert digits.target[index] == cls
                alpha = digit_alpha(digits.images[index] / 16.0, size)
                box = expected[top:top + size, left:left + size]
                box[alpha >= SEG_INK_THRESHOLD] = cls + 1
            np.testing.assert_array_equal(label_map, expected)


def test_several_non_overlapping_digits_per_image(seg_set):
    _, meta = seg_set
    counts = []
    for split in ('train', 'val'):
        for scene in meta['scenes'][split]:
            boxes = np.zeros((64, 64), np.int64)
            for _, _, top, left, size in scene['digits']:
                assert 16 <= size <= 28
                boxes[top:top + size, left:left + size] += 1
            assert boxes.max() == 1  # boxes never overlap
            counts.append(len(scene['digits']))
    assert min(counts) >= 2 and max(counts) <= 4
    assert set(counts) == {2, 3, 4}


def test_train_and_val_digits_are_disjoint(seg_set):
    _, meta = seg_set
    labels = load_digits().target
    # the pools are the classification set's split
    split = split_digit_indices(labels, 1300, 497, seed=0)
    pools = meta['digit_indices']
    assert pools['train'] == split['train'].tolist()
    assert pools['val'] == split['val'].tolist()
    assert not set(pools['train']) & set(pools['val'])
    for name in ('train', 'val'):
        used = {d[0] for s in meta['scenes'][name] for d in s['digits']}
        assert used <= set(pools[name])


def test_painted_ink_matches_the_labels():
    """Each digit is painted with its ink through the very mask that labels
    it: labelled pixels are >= 50 % ink, the ink contrasts with the
    background under the digit, and pixels outside the digits are exactly
    the background."""
    digits = load_digits()
    photos = load_sample_images().images
    pool = np.arange(len(digits.target))
    for seed in range(20):
        scene = render_segmentation_scene(
            digits.images / 16.0, digits.target, pool, photos,
            np.random.default_rng(seed), 64, (2, 4), (16, 28), (128, 384),
            2.0, 0.3, 100.0)
        assert len(scene.placements) >= 2
        assert len(scene.inks) == len(scene.placements)
        np.testing.assert_array_equal(scene.label_map > 0,
                                      scene.alpha >= SEG_INK_THRESHOLD)
        for placement, ink in zip(scene.placements, scene.inks):
            box = (slice(placement.top, placement.top + placement.size),
                   slice(placement.left, placement.left + placement.size))
            alpha = scene.alpha[box]
            labelled = scene.label_map[box] == placement.digit_class + 1
            np.testing.assert_array_equal(labelled,
                                          alpha >= SEG_INK_THRESHOLD)
            assert labelled.sum() >= 10
            painted = (1 - alpha[..., None]) * scene.background[box] + \
                alpha[..., None] * ink
            np.testing.assert_array_equal(scene.image[box],
                                          np.rint(painted))
            local = luma(scene.background[box].reshape(-1, 3).mean(0))
            assert abs(luma(ink) - local) >= 100
        untouched = scene.alpha == 0
        np.testing.assert_array_equal(scene.image[untouched],
                                      np.rint(scene.background[untouched]))


def test_jpeg_keeps_the_scene(seg_set, tmp_path):
    """The JPEG on disk differs little from the rendered pixels."""
    root, meta = seg_set
    digits = load_digits()
    photos = load_sample_images().images
    pools = {k: np.asarray(v) for k, v in meta['digit_indices'].items()}
    images, _ = load_digit_scenes_seg(root, 'val')
    scene = render_segmentation_scene(
        digits.images / 16.0, digits.target, pools['val'], photos,
        np.random.default_rng([0, 1, 0, 7]), 64, (2, 4), (16, 28),
        (128, 384), 2.0, 0.3, 100.0)
    assert [list(p) for p in scene.placements] == \
        meta['scenes']['val'][0]['digits']
    error = np.abs(images[0].astype(np.float64) - scene.image)
    assert error.mean() < 4


def test_free_box_positions():
    occupied = np.zeros((8, 8), bool)
    occupied[2:5, 3:6] = True
    positions = free_box_positions(occupied, 3)
    expected = [(t, left) for t in range(6) for left in range(6)
                if not occupied[t:t + 3, left:left + 3].any()]
    assert [tuple(p) for p in positions] == expected
    assert len(free_box_positions(occupied, 9)) == 0


def test_generation_is_deterministic(seg_set, tmp_path):
    root, _ = seg_set
    again = str(tmp_path / 'again')
    first = make_digit_scenes_seg(
        again, num_train=NUM_TRAIN, num_val=NUM_VAL, show_progress=False)
    assert first['skipped'] is False
    files = scene_files(again)
    assert files == scene_files(root) and len(files) == 2 * (NUM_TRAIN +
                                                             NUM_VAL)
    for name in files:
        with open(osp.join(root, name), 'rb') as a, \
                open(osp.join(again, name), 'rb') as b:
            assert a.read() == b.read(), name


def test_invalid_parameters_name_the_argument(tmp_path):
    with pytest.raises(ValueError, match='num_digits_range'):
        make_digit_scenes_seg(str(tmp_path), num_digits_range=(0, 2))
    with pytest.raises(ValueError, match='digit_size_range'):
        make_digit_scenes_seg(str(tmp_path), digit_size_range=(16, 65))
    with pytest.raises(ValueError, match='jpeg_quality'):
        make_digit_scenes_seg(str(tmp_path), jpeg_quality=100)
    with pytest.raises(ValueError, match='num_train'):
        make_digit_scenes_seg(str(tmp_path), num_train=-1)


def test_mmseg_dataset_from_the_base_config(seg_set):
    """mmseg's BaseSegDataset, built from our base config, reads the set
    with 11 classes and label 0 kept as the background class."""
    from mmseg.registry import DATASETS
    root, meta = seg_set
    cfg = Config.fromfile(DATASET_CONFIG)
    assert cfg.val_evaluator == dict(type='IoUMetric', iou_metrics=['mIoU'])
    with DefaultScope.overwrite_default_scope('mmseg'):
        for split, loader in (('train', cfg.train_dataloader),
                              ('val', cfg.val_dataloader)):
            dataset_cfg = loader.dataset.copy()
            dataset_cfg.data_root = root
            if split == 'train':  # no random resize / crop: compare pixels
                dataset_cfg.pipeline = cfg.test_pipeline
            dataset = DATASETS.build(dataset_cfg)
            assert len(dataset) == meta['counts'][split]
            assert dataset.metainfo['classes'] == SEG_CLASS_NAMES
            assert len(dataset.metainfo['palette']) == 11
            assert dataset.reduce_zero_label is False
            assert dataset.label_map is None
            _, label_maps = load_digit_scenes_seg(root, split)
            for index in (0, len(dataset) - 1):
                sample = dataset[index]['data_samples']
                gt = sample.gt_sem_seg.data.numpy()[0]
                np.testing.assert_array_equal(gt, label_maps[index])
                assert 0 in gt and 255 not in gt


def test_command_line(tmp_path):
    cls_out, seg_out = str(tmp_path / 'cls'), str(tmp_path / 'seg')
    cmd = [
        sys.executable, 'tools/dataset_converters/make_digit_scenes.py',
        '--out', cls_out, '--num-train', '20', '--num-val', '10',
        '--seg-out', seg_out, '--seg-num-train', '6', '--seg-num-val', '3'
    ]
    env = dict(os.environ, PYTHONPATH=REPO_ROOT)
    proc = subprocess.run(
        cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
        env=env)
    assert proc.returncode == 0, proc.stderr
    assert 'wrote digit segmentation scenes' in proc.stdout
    assert '6 train / 3 val' in proc.stdout
    assert len(scene_files(seg_out)) == 2 * 9
    with Image.open(osp.join(seg_out, 'images', 'training',
                             'scene_00000.jpg')) as img:
        assert img.size == (64, 64)
    proc = subprocess.run(
        cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
        env=env)
    assert proc.returncode == 0, proc.stderr
    assert 'kept existing digit segmentation scenes' in proc.stdout
