"""tools/dataset_converters/make_stand_in_imagenet.py: full-size JPEGs cut
from scikit-learn's sample photographs, in an ImageNet train layout."""
import hashlib
import io
from pathlib import Path

import numpy as np
import pytest
from mmpretrain.datasets import CustomDataset, ImageNet
from PIL import Image

from .utils import REPO_ROOT, load_tool, python, run

SCRIPT = Path(REPO_ROOT) / 'tools' / 'dataset_converters' / \
    'make_stand_in_imagenet.py'
tool = load_tool(SCRIPT)


def digests(root: Path):
    return {
        str(path.relative_to(root)): hashlib.md5(path.read_bytes()).digest()
        for path in sorted(root.rglob('*')) if path.is_file()
    }


@pytest.fixture(scope='module')
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp('stand_in') / 'imagenet'
    paths = tool.make_stand_in_imagenet(str(root), images_per_class=6,
                                        num_classes=2, seed=3)
    return root, paths


def test_layout_sizes_and_labels(folder):
    root, paths = folder
    assert len(paths) == 12
    assert sorted(p.name for p in (root / 'train').iterdir()) == \
        ['n01440764', 'n01443537']
    sizes = set()
    for path in paths:
        assert path.suffix == '.JPEG'
        with Image.open(path) as image:
            assert image.format == 'JPEG' and image.mode == 'RGB'
            sizes.add(image.size)
    assert sizes <= {(500, 375), (375, 500)} and (500, 375) in sizes
    lines = (root / 'meta' / 'train.txt').read_text().splitlines()
    assert lines[0] == 'n01440764/n01440764_0.JPEG 0'
    assert lines[-1] == 'n01443537/n01443537_5.JPEG 1'


def test_quality_90_and_real_photo_content(folder):
    _, paths = folder
    # the quantisation tables PIL writes at quality 90
    reference = io.BytesIO()
    Image.new('RGB', (16, 16)).save(reference, 'JPEG', quality=90)
    with Image.open(reference) as image:
        tables_90 = image.quantization
    for path in paths:
        with Image.open(path) as image:
            assert image.quantization == tables_90
            pixels = np.asarray(image, dtype=np.float32)
        assert pixels.std() > 20  # a photograph, not a flat image
        # photographs at q90 are ~20-100 KiB, not a few KiB of flat colour
        assert 15_000 < path.stat().st_size < 200_000


def test_deterministic_given_seed(folder, tmp_path):
    root, _ = folder
    again = tmp_path / 'again'
    tool.make_stand_in_imagenet(str(again), images_per_class=6, seed=3)
    assert digests(again) == digests(root)
    other = tmp_path / 'other'
    tool.make_stand_in_imagenet(str(other), images_per_class=6, seed=4)
    assert digests(other) != digests(root)


def test_mmpretrain_datasets_load_it(folder):
    root, paths = folder
    dataset = ImageNet(data_root=str(root), split='train')
    assert len(dataset) == 12
    assert dataset[0]['gt_label'] == 0 and dataset[11]['gt_label'] == 1
    assert dataset.CLASSES[0].startswith('tench')
    custom = CustomDataset(data_root=str(root), data_prefix='train')
    assert custom.CLASSES == ('n01440764', 'n01443537')
    assert sorted(info['img_path'] for info in custom.load_data_list()) == \
        sorted(str(path) for path in paths)


def test_cli_refuses_to_overwrite(tmp_path):
    out = tmp_path / 'cli'
    args = ['--out', str(out), '--images-per-class', '1', '--classes', '1']
    proc = run([python(), str(SCRIPT), *args])
    assert 'wrote 1 JPEGs' in proc.stdout
    with pytest.raises(FileExistsError, match='--overwrite'):
        tool.main(args)
    assert len(tool.main(args + ['--overwrite'])) == 1
