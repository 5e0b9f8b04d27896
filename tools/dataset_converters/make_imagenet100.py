"""Make ImageNet-100 (CMC's 100-class subset) from a class-per-folder ImageNet.

ImageNet-100 is the 100-class split of Tian et al. (CMC) that the M-MoCo
ablations use (paper §3.1); the wnids are in ``imagenet100_classes.txt`` next
to this script (CMC's ``imagenet100.txt``). The configs
``configs/mmoco/*_in100.py`` read it with mmpretrain's ``CustomDataset``
(``data_root='data/imagenet100/'``, ``data_prefix='train'``).

Example::

    python tools/dataset_converters/make_imagenet100.py \
        --imagenet data/imagenet --out data/imagenet100 --splits train val

writes ``data/imagenet100/<split>/<wnid>`` for the 100 classes: by default a
symlink to ``<imagenet>/<split>/<wnid>`` (absolute, so the output can be
moved), or with ``--mode copy`` a copy of its files. The input must be in the
class-per-folder layout ``<imagenet>/<split>/<wnid>/*.JPEG``: ImageNet's
``train`` is, its ``val`` is flat unless reorganised into class folders (e.g.
with the usual ``valprep.sh``). Every one of the 100 classes must be present.

An existing non-empty ``--out`` is an error; ``--overwrite`` replaces the
``--out/<split>`` folders being made (other contents of ``--out`` are kept).
"""
import argparse
import os
import shutil
from pathlib import Path
from typing import Dict, List, Sequence, Tuple, Union

from mmengine.utils import track_iter_progress

IMAGENET100_CLASSES = Path(__file__).with_name('imagenet100_classes.txt')
NUM_CLASSES = 100
SPLITS = ('train', 'val')
MODES = ('symlink', 'copy')
# The files mmpretrain's ``CustomDataset`` loads by default (lower-cased
# suffixes; hidden files are skipped); used to count images in the summary.
IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.ppm', '.bmp', '.pgm', '.tif')

PathLike = Union[str, os.PathLike]


def read_wnids(class_list: PathLike = IMAGENET100_CLASSES) -> List[str]:
    """Read a class list: one wnid a line; blank and ``#`` lines skipped.

    Args:
        class_list: The list file; defaults to ImageNet-100's.

    Returns:
        The wnids in file order.

    Raises:
        ValueError: If a wnid repeats.
    """
    wnids = []
    for line in Path(class_list).read_text().splitlines():
        line = line.strip()
        if line and not line.startswith('#'):
            wnids.append(line)
    repeated = sorted({wnid for wnid in wnids if wnids.count(wnid) > 1})
    if repeated:
        raise ValueError(f'{class_list} repeats wnids: {" ".join(repeated)}')
    return wnids


def find_class_dirs(imagenet_root: Path, split: str,
                    wnids: Sequence[str]) -> Dict[str, Path]:
    """Find ``<imagenet_root>/<split>/<wnid>`` for every wnid.

    Args:
        imagenet_root: The ImageNet root folder.
        split: ``'train'`` or ``'val'``.
        wnids: The wnids wanted.

    Returns:
        wnid -> its class folder (absolute).

    Raises:
        FileNotFoundError: If the split folder is missing, holds none of the
            class folders (a flat layout, as ImageNet's val is by default),
            or lacks some of them (all missing wnids are named).
    """
    split_dir = imagenet_root.absolute() / split
    if not split_dir.is_dir():
        raise FileNotFoundError(
            f'{split_dir} not found: expected ImageNet {split} images in '
            f'class folders {split_dir}/<wnid>/*.JPEG')
    class_dirs = {wnid: split_dir / wnid for wnid in wnids}
    missing = [wnid for wnid, path in class_dirs.items() if not path.is_dir()]
    if len(missing) == len(wnids):
        hint = ''
        if split == 'val':
            hint = (" ImageNet's val is flat unless reorganised: val must be "
                    'in class folders (e.g. via the usual valprep.sh script)'
                    ', or pass --splits train.')
        raise FileNotFoundError(
            f'{split_dir} holds none of the ImageNet-100 class folders; '
            f'expected the layout {split_dir}/<wnid>/*.JPEG.{hint}')
    if missing:
        raise FileNotFoundError(
            f'{split_dir} lacks {len(missing)} of the {len(wnids)} '
            f'ImageNet-100 classes: {" ".join(missing)}')
    return class_dirs


def is_image_file(name: str) -> bool:
    """Whether ``CustomDataset`` would load a file of this name."""
    return not name.startswith('.') and name.lower().endswith(IMG_EXTENSIONS)


def count_split(split_dir: Path) -> Tuple[int, int]:
    """Count class folders and image files (following symlinks).

    Args:
        split_dir: A made ``<out>/<split>`` folder.

    Returns:
        (number of class folders, number of image files).
    """
    class_dirs = [path for path in split_dir.iterdir() if path.is_dir()]
    num_images = 0
    for class_dir in class_dirs:
        for _, _, names in os.walk(class_dir, followlinks=True):
            num_images += sum(is_image_file(name) for name in names)
    return len(class_dirs), num_images


def check_output(out_root: Path, imagenet_root: Path, splits: Sequence[str],
                 overwrite: bool) -> None:
    """Refuse an output that overlaps ImageNet or is non-empty.

    With ``overwrite`` the ``<out_root>/<split>`` folders to be made are
    removed (symlinks in them are unlinked, never followed).

    Raises:
        ValueError: If ``out_root`` and ``imagenet_root`` are the same
            folder or one lies inside the other.
        FileExistsError: If ``out_root`` is non-empty and not
            ``overwrite``.
    """
    out_real, imagenet_real = out_root.resolve(), imagenet_root.resolve()
    if (out_real == imagenet_real or imagenet_real in out_real.parents
            or out_real in imagenet_real.parents):
        raise ValueError(
            f'--out ({out_root}) and --imagenet ({imagenet_root}) must not '
            'be the same folder or lie inside each other')
    if out_root.is_dir() and any(out_root.iterdir()):
        if not overwrite:
            raise FileExistsError(
                f'{out_root} exists and is not empty; pass --overwrite to '
                f'replace its {"/".join(splits)} folders')
        for split in splits:
            split_dir = out_root / split
            if split_dir.is_symlink() or split_dir.is_file():
                split_dir.unlink()
            elif split_dir.is_dir():
                shutil.rmtree(split_dir)


def link_classes(class_dirs: Dict[str, Path], out_split: Path) -> None:
    """Symlink each class folder into ``out_split`` (absolute targets)."""
    for wnid, class_dir in track_iter_progress(list(class_dirs.items())):
        os.symlink(class_dir, out_split / wnid, target_is_directory=True)


def copy_classes(class_dirs: Dict[str, Path], out_split: Path) -> None:
    """Copy every file of each class folder into ``out_split/<wnid>``."""
    copies = []
    for wnid, class_dir in class_dirs.items():
        for root, _, names in os.walk(class_dir, followlinks=True):
            dst_dir = out_split / wnid / Path(root).relative_to(class_dir)
            dst_dir.mkdir(parents=True, exist_ok=True)
            copies += [(Path(root) / name, dst_dir / name) for name in names]
    for src, dst in track_iter_progress(copies):
        shutil.copy2(src, dst)


def make_imagenet100(imagenet_root: PathLike,
                     out_root: PathLike,
                     splits: Sequence[str] = ('train', ),
                     mode: str = 'symlink',
                     overwrite: bool = False,
                     class_list: PathLike = IMAGENET100_CLASSES
                     ) -> Dict[str, Dict[str, int]]:
    """Write ``<out_root>/<split>/<wnid>`` for the ImageNet-100 classes.

    All inputs are checked before anything is written, so an error leaves
    no partial output.

    Args:
        imagenet_root: ImageNet in class folders,
            ``<imagenet_root>/<split>/<wnid>/*.JPEG``.
        out_root: The output folder.
        splits: Splits to make, from ``('train', 'val')``.
        mode: ``'symlink'`` links each class folder, ``'copy'`` copies its
            files.
        overwrite: Replace the split folders of a non-empty ``out_root``.
        class_list: The wnid list; defaults to ImageNet-100's.

    Returns:
        split -> ``{'classes': n, 'images': m}``, counted in the output.

    Raises:
        ValueError: On an unknown ``mode`` or split, or overlapping folders.
        FileNotFoundError: If a split or any class folder is missing.
        FileExistsError: If ``out_root`` is non-empty and not ``overwrite``.
    """
    if mode not in MODES:
        raise ValueError(f'--mode must be one of {MODES}, got {mode!r}')
    unknown = [split for split in splits if split not in SPLITS]
    if unknown or not splits:
        raise ValueError(
            f'--splits must be a non-empty subset of {SPLITS}, got '
            f'{list(splits)}')
    splits = list(dict.fromkeys(splits))
    imagenet_root, out_root = Path(imagenet_root), Path(out_root)
    wnids = read_wnids(class_list)
    class_dirs = {
        split: find_class_dirs(imagenet_root, split, wnids)
        for split in splits
    }
    check_output(out_root, imagenet_root, splits, overwrite)

    summary = {}
    for split in splits:
        out_split = out_root / split
        out_split.mkdir(parents=True)
        verb = 'linking' if mode == 'symlink' else 'copying'
        print(f'{split}: {verb} {len(wnids)} classes into {out_split}')
        if mode == 'symlink':
            link_classes(class_dirs[split], out_split)
        else:
            copy_classes(class_dirs[split], out_split)
        num_classes, num_images = count_split(out_split)
        summary[split] = dict(classes=num_classes, images=num_images)
    return summary


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        '--imagenet',
        default='data/imagenet',
        help='ImageNet root with <split>/<wnid>/*.JPEG class folders')
    parser.add_argument(
        '--out', default='data/imagenet100', help='output folder')
    parser.add_argument(
        '--splits',
        nargs='+',
        choices=SPLITS,
        default=['train'],
        help='splits to make (the M-MoCo configs read train)')
    parser.add_argument(
        '--mode',
        choices=MODES,
        default='symlink',
        help='symlink each class folder (default) or copy its files')
    parser.add_argument(
        '--overwrite',
        action='store_true',
        help='replace the split folders of a non-empty --out')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    try:
        summary = make_imagenet100(
            args.imagenet,
            args.out,
            splits=args.splits,
            mode=args.mode,
            overwrite=args.overwrite)
    except (ValueError, FileNotFoundError, FileExistsError) as error:
        raise SystemExit(f'error: {error}')
    counts = '; '.join(
        f"{split}: {count['classes']} classes, {count['images']} images"
        for split, count in summary.items())
    print(f'ImageNet-100 in {args.out} ({args.mode}): {counts}')


if __name__ == '__main__':
    main()
