"""Write the embedded "digit scenes" demo set (real sklearn digits on photos).

Example::

    python tools/dataset_converters/make_digit_scenes.py \
        --out data/digit_scenes

Does nothing if ``--out`` already holds a complete set made with the same
parameters (see ``meta.json``); ``--force`` regenerates.
"""
import argparse

from mmmoma.datasets.digit_scenes import make_digit_scenes


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        '--out', default='data/digit_scenes', help='output folder')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--num-train', type=int, default=1300)
    parser.add_argument('--num-val', type=int, default=497)
    parser.add_argument('--img-size', type=int, default=32)
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


if __name__ == '__main__':
    main()
