"""mmmoma.utils.data_throughput: a config's train pipeline on JPEG files,
one thread, per CPU core."""
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from mmcv.transforms import BaseTransform
from mmpretrain.registry import TRANSFORMS
from PIL import Image

import mmmoma  # noqa: F401
from mmmoma.utils.data_throughput import (cores_per_gpu, load_real_batch,
                                          measure_pipeline_throughput,
                                          stand_in_image_paths)


@TRANSFORMS.register_module(force=True)
class _RecordThreads(BaseTransform):
    """Records the thread counts it runs under and the images it sees."""
    calls = []

    def transform(self, results):
        _RecordThreads.calls.append(
            (results['img'].shape, torch.get_num_threads(),
             cv2.getNumThreads()))
        return results


@pytest.fixture(scope='module')
def images(tmp_path_factory):
    root = tmp_path_factory.mktemp('jpegs')
    rng = np.random.default_rng(0)
    for index, size in enumerate([(50, 40), (40, 50), (60, 45)]):
        folder = root / 'train' / f'n0{index % 2}'
        folder.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f'{index}.JPEG', quality=90)
    (root / 'train' / 'notes.txt').write_text('not an image')
    return str(root)


PIPELINE = [
    dict(type='LoadImageFromFile'),
    dict(type='_RecordThreads'),
    dict(type='RandomResizedCrop', scale=32, backend='pillow',
         interpolation='bicubic'),
    dict(type='PackInputs'),
]


def test_stand_in_image_paths(images, tmp_path):
    paths = stand_in_image_paths(images)
    assert [Path(path).name for path in paths] == ['0.JPEG', '2.JPEG',
                                                   '1.JPEG']
    with pytest.raises(FileNotFoundError, match='make_stand_in_imagenet'):
        stand_in_image_paths(str(tmp_path))


def test_throughput_counts_images_on_one_thread(images):
    torch.set_num_threads(2)
    cv2.setNumThreads(2)
    _RecordThreads.calls.clear()
    result = measure_pipeline_throughput(PIPELINE, stand_in_image_paths(
        images), num_images=7, warmup=2)
    assert len(_RecordThreads.calls) == 2 + 7  # warm-up + timed
    # cycles through the files, decoded at their own sizes
    assert [shape for shape, _, _ in _RecordThreads.calls[:4]] == \
        [(40, 50, 3), (45, 60, 3), (50, 40, 3), (40, 50, 3)]
    assert {call[1:] for call in _RecordThreads.calls} == {(1, 1)}
    assert (torch.get_num_threads(), cv2.getNumThreads()) == (2, 2)
    assert result.num_images == 7 and result.threads == 1
    assert result.wall_s > 0 and result.cpu_s > 0
    assert result.images_per_s == pytest.approx(7 / result.wall_s)
    assert result.images_per_core_s == pytest.approx(7 / result.cpu_s)


def test_cores_per_gpu():
    assert cores_per_gpu(3000.0, 250.0) == 12.0
    with pytest.raises(ValueError):
        cores_per_gpu(1.0, 0.0)


def test_load_real_batch_collates_the_files(images):
    batch = load_real_batch(PIPELINE, dict(type='default_collate'),
                            stand_in_image_paths(images), batch_size=4)
    assert batch['inputs'].shape == (4, 3, 32, 32)
    assert batch['inputs'].dtype == torch.uint8
