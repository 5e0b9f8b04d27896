"""Convert an official MoCo v3 release to mmpretrain ``VisionTransformer``
keys.

Usage::

    python tools/model_converters/mocov3_to_mmpretrain.py \
        vit-s-300ep.pth.tar work_dirs/mocov3_vit-small_backbone.pth

Reads ``{'state_dict': {'module.base_encoder.*', 'module.momentum_encoder.*',
'module.predictor.*'}}``, keeps ``module.base_encoder.*`` without its
projector ``head.*`` (dropped and reported) and writes ``{'state_dict':
{mmpretrain keys}, 'meta': {source info}}``. MoCo v3's ViT-S has 12 heads:
build it as mmpretrain ``VisionTransformer(arch='mocov3-small')``.
"""
import argparse
from typing import Optional, Sequence

from mmmoma.checkpoints import convert_to_backbone_checkpoint


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Convert an official MoCo v3 release checkpoint '
        '(module.base_encoder.*) to mmpretrain VisionTransformer keys.')
    parser.add_argument('src', help='MoCo v3 release checkpoint (.pth.tar)')
    parser.add_argument('dst', help='output backbone file (.pth)')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(argv)
    num_keys = convert_to_backbone_checkpoint(
        args.src, args.dst, expected_format='mocov3')
    print(f'Wrote {num_keys} keys to {args.dst}')


if __name__ == '__main__':
    main()
