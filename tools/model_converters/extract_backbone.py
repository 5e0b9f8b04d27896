"""Extract the backbone of an mmpretrain / mmmoma training checkpoint.

Usage::

    python tools/model_converters/extract_backbone.py \
        work_dirs/moma/epoch_300.pth work_dirs/moma/backbone.pth \
        [--prefix backbone.]

Keeps the keys under ``--prefix`` (``backbone.`` by default; e.g.
``teacher.`` for an EMA teacher), removes the prefix, and writes
``{'state_dict': {backbone keys}, 'meta': {source info}}``: no optimizer,
neck, head or message-hub state. Use the output for fine-tuning with
``backbone=dict(..., init_cfg=dict(type='Pretrained', checkpoint=DST))``
(no prefix), or as a frozen teacher.
"""
import argparse
from typing import Optional, Sequence

from mmmoma.checkpoints import convert_to_backbone_checkpoint


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Extract a backbone-only file from an mmpretrain / '
        'mmmoma training checkpoint.')
    parser.add_argument('src', help='training checkpoint (.pth)')
    parser.add_argument('dst', help='output backbone file (.pth)')
    parser.add_argument(
        '--prefix',
        default='backbone.',
        help='key prefix of the sub-module to extract (default: backbone.)')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(argv)
    num_keys = convert_to_backbone_checkpoint(
        args.src, args.dst, expected_format='mmpretrain', prefix=args.prefix)
    print(f'Wrote {num_keys} keys to {args.dst}')


if __name__ == '__main__':
    main()
