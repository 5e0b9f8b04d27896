"""Turn a pre-training checkpoint into mmpretrain and mmseg backbone files.

Usage::

    python tools/model_converters/pretrain_to_transfer.py \
        work_dirs/moma/epoch_100.pth checkpoints/moma_vit-base-p16 \
        [--encoder student|teacher] [--seg-img-size 512]

writes ``OUT_DIR/mmpretrain_backbone.pth`` (for configs/benchmarks/mmpretrain:
ImageNet / CIFAR fine-tuning, linear probing) and
``OUT_DIR/mmseg_backbone_512px.pth`` (for configs/benchmarks/mmseg: the ViT
position embedding resized to the 512 px grid). ``SRC`` may be any mmmoma /
mmpretrain training checkpoint (the student ``backbone.*``; an ImageNet
fine-tuned classifier too), a backbone file, or an official MAE / MoCo v3
release. ``--encoder teacher`` takes the EMA teacher (SdAE ``teacher.*``,
M-MoCo / M-BYOL ``momentum_encoder.backbone.*``).

The configs load the files with ``init_cfg=dict(type='StrictPretrained')``:
the log says how many tensors were loaded, and any missing or unexpected
key is an error that names it.
"""
import argparse
from typing import Optional, Sequence

from mmmoma.checkpoints.transfer import ENCODERS, export_transfer_backbones


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Write mmpretrain and mmseg backbone files from a '
        'pre-training checkpoint.')
    parser.add_argument('src', help='pre-training checkpoint (.pth)')
    parser.add_argument('out_dir', help='output folder')
    parser.add_argument(
        '--encoder',
        choices=ENCODERS,
        default='student',
        help='student backbone (default) or the EMA teacher')
    parser.add_argument(
        '--seg-img-size',
        type=int,
        default=512,
        help='segmentation input size the mmseg file is made for '
        '(default: 512, ADE20K)')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(argv)
    paths = export_transfer_backbones(
        args.src,
        args.out_dir,
        encoder=args.encoder,
        seg_img_size=args.seg_img_size)
    for kind, path in paths.items():
        print(f'{kind}: {path}')


if __name__ == '__main__':
    main()
