"""Write the embedded "digit scenes" demo set (real sklearn digits on photos).

Example::

    python tools/dataset_converters/make_digit_scenes.py \
        --out data/digit_scenes [--seg-out data/digit_scenes_seg]

``--seg-out`` also writes the segmentation set (several digits per 64 px
image, label maps in mmseg's ADE20K layout). Does nothing for a folder that
already holds a complete set made with the same parameters (see its
``meta.json``); ``--force`` regenerates.
"""
import argparse
from typing import Callable

# This script's folder is first on sys.path: the package next to it.
from digit_scenes import make_digit_scenes, make_digit_scenes_seg


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        '--out', default='data/digit_scenes', help='output folder')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--num-train', type=int, default=1300)
    parser.add_argument('--num-val', type=int, default=497)
    parser.add_argument('--img-size', type=int, default=32)
    parser.add_argument(
        '--seg-out',
        default=None,
        help='also write the segmentation set to this folder')
    parser.add_argument(
        '--seg-num-train',
        type=int,
        default=1000,
        help='segmentation train images (default 1000)')
    parser.add_argument(
        '--seg-num-val',
        type=int,
        default=200,
        help='segmentation val images (default 200)')
    parser.add_argument(
        '--seg-img-size',
        type=int,
        default=64,
        help='segmentation image side (default 64)')
    parser.add_argument(
        '--force', action='store_true', help='regenerate an existing set')
    return parser.parse_args()


def write_set(what: str, make: Callable[..., dict], out: str, num_train: int,
              num_val: int, img_size: int, seed: int, force: bool) -> None:
    """Write (or keep) one set and say so.

    Args:
        what (str): The set's name in the message.
        make (Callable[..., dict]): Its writer, returning the meta.
        out (str): Output folder.
        num_train (int): Train images.
        num_val (int): Val images.
        img_size (int): Image side.
        seed (int): Seed of the set.
        force (bool): Regenerate an existing set.
    """
    meta = make(
        out,
        num_train=num_train,
        num_val=num_val,
        img_size=img_size,
        seed=seed,
        force=force)
    # counts per split: per class (classification) or a number
    counts = {
        split: count if isinstance(count, int) else sum(count.values())
        for split, count in meta['counts'].items()
    }
    action = 'kept existing' if meta['skipped'] else 'wrote'
    print(f'{action} {what} in {out}: '
          f"{counts['train']} train / {counts['val']} val images")


def main() -> None:
    args = parse_args()
    write_set('digit scenes', make_digit_scenes, args.out, args.num_train,
              args.num_val, args.img_size, args.seed, args.force)
    if args.seg_out:
        write_set('digit segmentation scenes', make_digit_scenes_seg,
                  args.seg_out, args.seg_num_train, args.seg_num_val,
                  args.seg_img_size, args.seed, args.force)


if __name__ == '__main__':
    main()
