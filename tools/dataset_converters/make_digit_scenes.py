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

from mmmoma.datasets.digit_scenes import (make_digit_scenes,
                                          make_digit_scenes_seg)


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


def main() -> None:
    args = parse_args()
    meta = make_digit_scenes(
        args.out,
        num_train=args.num_train,
        num_val=args.num_val,
        img_size=args.img_size,
        seed=args.seed,
        force=args.force)
    counts = {split: sum(c.values()) for split, c in meta['counts'].items()}
    action = 'kept existing' if meta['skipped'] else 'wrote'
    print(f'{action} digit scenes in {args.out}: '
          f"{counts['train']} train / {counts['val']} val images")
    if args.seg_out:
        seg_meta = make_digit_scenes_seg(
            args.seg_out,
            num_train=args.seg_num_train,
            num_val=args.seg_num_val,
            img_size=args.seg_img_size,
            seed=args.seed,
            force=args.force)
        action = 'kept existing' if seg_meta['skipped'] else 'wrote'
        print(f'{action} digit segmentation scenes in {args.seg_out}: '
              f"{seg_meta['counts']['train']} train / "
              f"{seg_meta['counts']['val']} val images")


if __name__ == '__main__':
    main()
