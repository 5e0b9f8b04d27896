"""tools/dataset_converters/make_imagenet100.py: ImageNet -> ImageNet-100.

Runs on a fake class-per-folder ImageNet in ``tmp_path``: all 100
ImageNet-100 wnids (1 or 2 tiny files each) plus a few other classes.
"""
import hashlib
import importlib.util
import os
import re
from pathlib import Path
from types import ModuleType
from typing import List

import pytest
from mmpretrain.datasets import CustomDataset

from .utils import REPO_ROOT, python, run

CONVERTERS = Path(REPO_ROOT) / 'tools' / 'dataset_converters'
SCRIPT = CONVERTERS / 'make_imagenet100.py'
CLASS_LIST = CONVERTERS / 'imagenet100_classes.txt'
# md5 of CMC's imagenet100.txt (github.com/HobbitLong/CMC), one wnid a line.
CMC_LIST_MD5 = '9974508e5d4cc0098b70e8b6a0fe6067'
# ImageNet-1k classes outside ImageNet-100.
EXTRA_WNIDS = ('n01440764', 'n01443537', 'n15075141')


def load_tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location('make_imagenet100', SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tool = load_tool()
WNIDS = tool.read_wnids()


def num_files(class_index: int) -> int:
    """Images the fake train split holds in its ``class_index``-th class."""
    return 1 + class_index % 2


NUM_TRAIN_IMAGES = sum(num_files(index) for index in range(len(WNIDS)))


def make_fake_imagenet(root: Path, flat_val: bool = False) -> Path:
    """Fake ImageNet: train/<wnid>/ with 1-2 files, val/<wnid>/ with 1.

    With ``flat_val`` the val images lie directly in ``val/`` (ImageNet's
    layout before valprep). Every file holds its own path, so copies can be
    traced to their source.
    """
    for index, wnid in enumerate(list(WNIDS) + list(EXTRA_WNIDS)):
        train_dir = root / 'train' / wnid
        train_dir.mkdir(parents=True)
        for image_index in range(num_files(index)):
            image = train_dir / f'{wnid}_{image_index}.JPEG'
            image.write_bytes(str(image).encode())
        val_dir = root / 'val' if flat_val else root / 'val' / wnid
        val_dir.mkdir(parents=True, exist_ok=True)
        image = val_dir / f'ILSVRC2012_val_{index:08d}.JPEG'
        image.write_bytes(str(image).encode())
    return root


@pytest.fixture
def imagenet(tmp_path: Path) -> Path:
    return make_fake_imagenet(tmp_path / 'imagenet')


def entries(folder: Path) -> List[str]:
    return sorted(os.listdir(folder))


def test_class_list_is_cmc_imagenet100():
    lines = CLASS_LIST.read_text().splitlines()
    assert lines[0].startswith('# ImageNet-100 (CMC, Tian et al. 2019')
    assert len(WNIDS) == 100 and len(set(WNIDS)) == 100
    assert all(re.fullmatch(r'n\d{8}', wnid) for wnid in WNIDS)
    assert WNIDS == [line for line in lines if not line.startswith('#')]
    cmc_text = ''.join(f'{wnid}\n' for wnid in WNIDS)
    assert hashlib.md5(cmc_text.encode()).hexdigest() == CMC_LIST_MD5
    assert not set(EXTRA_WNIDS) & set(WNIDS)


def test_read_wnids_skips_comments_and_refuses_repeats(tmp_path):
    class_list = tmp_path / 'classes.txt'
    class_list.write_text('# header\nn00000001\n\n  # note\nn00000002\n')
    assert tool.read_wnids(class_list) == ['n00000001', 'n00000002']
    class_list.write_text('n00000001\nn00000002\nn00000001\n')
    with pytest.raises(ValueError, match='repeats wnids: n00000001'):
        tool.read_wnids(class_list)


def test_symlink_mode_links_exactly_the_100_class_folders(imagenet, tmp_path):
    out = tmp_path / 'imagenet100'
    summary = tool.make_imagenet100(imagenet, out, splits=['train', 'val'])
    assert entries(out) == ['train', 'val']
    for split in ('train', 'val'):
        assert entries(out / split) == sorted(WNIDS)
        for wnid in WNIDS:
            link = out / split / wnid
            source = imagenet / split / wnid
            assert link.is_symlink()
            assert os.readlink(link) == str(source.absolute())
            assert entries(link) == entries(source)
    assert summary == {
        'train': dict(classes=100, images=NUM_TRAIN_IMAGES),
        'val': dict(classes=100, images=100),
    }


def test_copy_mode_copies_the_files(imagenet, tmp_path):
    out = tmp_path / 'imagenet100'
    summary = tool.make_imagenet100(imagenet, out, mode='copy')
    assert entries(out) == ['train']
    assert entries(out / 'train') == sorted(WNIDS)
    for wnid in WNIDS:
        class_dir = out / 'train' / wnid
        source = imagenet / 'train' / wnid
        assert class_dir.is_dir() and not class_dir.is_symlink()
        assert entries(class_dir) == entries(source)
        for name in entries(class_dir):
            assert not (class_dir / name).is_symlink()
            # Each fake image holds its source path: a copy, not a move.
            assert (class_dir / name).read_bytes() == str(source /
                                                          name).encode()
            assert (source / name).exists()
    assert summary == {'train': dict(classes=100, images=NUM_TRAIN_IMAGES)}


def test_missing_classes_are_named_and_nothing_is_written(
        imagenet, tmp_path):
    missing = [WNIDS[3], WNIDS[57]]
    for wnid in missing:
        for image in (imagenet / 'train' / wnid).iterdir():
            image.unlink()
        (imagenet / 'train' / wnid).rmdir()
    out = tmp_path / 'imagenet100'
    with pytest.raises(FileNotFoundError) as error:
        tool.make_imagenet100(imagenet, out)
    message = str(error.value)
    assert 'lacks 2 of the 100' in message
    assert all(wnid in message for wnid in missing)
    assert WNIDS[0] not in message
    assert not out.exists()


def test_flat_val_is_refused_with_the_fix(tmp_path):
    imagenet = make_fake_imagenet(tmp_path / 'imagenet', flat_val=True)
    out = tmp_path / 'imagenet100'
    with pytest.raises(FileNotFoundError) as error:
        tool.make_imagenet100(imagenet, out, splits=['train', 'val'])
    message = str(error.value)
    assert 'val must be in class folders' in message
    assert 'valprep' in message and '--splits train' in message
    assert not out.exists()
    # The suggested fix works.
    summary = tool.make_imagenet100(imagenet, out, splits=['train'])
    assert summary['train']['classes'] == 100


def test_missing_split_folder_is_named(tmp_path):
    imagenet = tmp_path / 'imagenet'
    for wnid in WNIDS:
        (imagenet / 'train' / wnid).mkdir(parents=True)
    out = tmp_path / 'imagenet100'
    with pytest.raises(FileNotFoundError, match=r'val not found'):
        tool.make_imagenet100(imagenet, out, splits=['train', 'val'])
    assert not out.exists()


def test_existing_output_needs_overwrite(imagenet, tmp_path):
    out = tmp_path / 'imagenet100'
    (out / 'train' / 'stale_class').mkdir(parents=True)
    (out / 'notes.txt').write_text('kept')
    with pytest.raises(FileExistsError, match='--overwrite'):
        tool.make_imagenet100(imagenet, out)
    assert entries(out / 'train') == ['stale_class']

    summary = tool.make_imagenet100(imagenet, out, overwrite=True)
    assert entries(out / 'train') == sorted(WNIDS)
    assert (out / 'notes.txt').read_text() == 'kept'
    assert summary['train'] == dict(classes=100, images=NUM_TRAIN_IMAGES)
    # Overwriting a symlinked split unlinks the links, never their targets.
    tool.make_imagenet100(imagenet, out, mode='copy', overwrite=True)
    assert entries(imagenet / 'train') == sorted(WNIDS + list(EXTRA_WNIDS))
    assert all(entries(imagenet / 'train' / wnid) for wnid in WNIDS)
    assert not (out / 'train' / WNIDS[0]).is_symlink()


def test_bad_arguments_are_refused(imagenet, tmp_path):
    with pytest.raises(ValueError, match=r"--mode must be one of .*'copy'"):
        tool.make_imagenet100(imagenet, tmp_path / 'out', mode='hardlink')
    with pytest.raises(ValueError, match=r'--splits must be'):
        tool.make_imagenet100(imagenet, tmp_path / 'out', splits=['test'])
    with pytest.raises(ValueError, match='must not be the same folder'):
        tool.make_imagenet100(imagenet, imagenet, overwrite=True)
    assert entries(imagenet / 'train') == sorted(WNIDS + list(EXTRA_WNIDS))


def test_cli_output_loads_as_custom_dataset(imagenet, tmp_path):
    out = tmp_path / 'imagenet100'
    proc = run([
        python(),
        str(SCRIPT), '--imagenet',
        str(imagenet), '--out',
        str(out)
    ])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (f'train: 100 classes, {NUM_TRAIN_IMAGES} images'
            in proc.stdout), proc.stdout
    dataset = CustomDataset(data_root=str(out), data_prefix='train')
    assert len(dataset.metainfo['classes']) == 100
    assert list(dataset.metainfo['classes']) == sorted(WNIDS)
    assert len(dataset) == NUM_TRAIN_IMAGES
    labels = [dataset.get_data_info(i)['gt_label'] for i in range(3)]
    paths = [dataset.get_data_info(i)['img_path'] for i in range(3)]
    assert [Path(path).parent.name for path in paths] == [
        sorted(WNIDS)[label] for label in labels
    ]

    # A second run refuses the now non-empty output, on stderr.
    proc = run([
        python(),
        str(SCRIPT), '--imagenet',
        str(imagenet), '--out',
        str(out)
    ])
    assert proc.returncode == 1
    assert 'error:' in proc.stderr and '--overwrite' in proc.stderr
