"""Convert an official MAE release to mmpretrain ``VisionTransformer`` keys.

Usage::

    python tools/model_converters/mae_to_mmpretrain.py \
        mae_pretrain_vit_base.pth work_dirs/mae_vit-base_backbone.pth

Reads ``{'model': {timm ViT keys}}`` (``mae_pretrain_vit_{base,large,huge}``;
``*_full.pth`` files also work: their ``mask_token`` / ``decoder_*`` keys are
dropped and reported) and writes ``{'state_dict': {mmpretrain keys}, 'meta':
{source info}}``. Load the output into a backbone with
``init_cfg=dict(type='Pretrained', checkpoint=DST)`` (no prefix), or as a
frozen teacher (``mmmoma.models.utils.FrozenTeacher``). The key mapping is in
``mmmoma/checkpoints/timm_vit.py``.
"""
import argparse
from typing import Optional, Sequence

from mmmoma.checkpoints import convert_to_backbone_checkpoint


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Convert an official MAE release checkpoint '
        "({'model': timm keys}) to mmpretrain VisionTransformer keys.")
    parser.add_argument('src', help='MAE release checkpoint (.pth)')
    parser.add_argument('dst', help='output backbone file (.pth)')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(argv)
    num_keys = convert_to_backbone_checkpoint(
        args.src, args.dst, expected_format='mae')
    print(f'Wrote {num_keys} keys to {args.dst}')


if __name__ == '__main__':
    main()
