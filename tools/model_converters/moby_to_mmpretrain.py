"""Convert an official MoBY Swin release to mmpretrain ``SwinTransformer``
keys.

Usage::

    python tools/model_converters/moby_to_mmpretrain.py \
        moby_swin_t_300ep_pretrained.pth \
        checkpoints/moby_swin_t_300ep_mmpretrain.pth

Reads the MoBY release of SwinTransformer/Transformer-SSL, ``{'model':
{'encoder.*', 'encoder_k.*', 'projector.*', 'projector_k.*', 'predictor.*',
'queue1', 'queue2', 'queue_ptr'}}``, keeps the online encoder ``encoder.*``
(everything else is dropped and reported), maps its official Swin names to
mmpretrain's (``PatchMerging`` weights reordered, ``attn_mask`` buffers
dropped, ``relative_position_index`` checked) and writes ``{'state_dict':
{mmpretrain keys}, 'meta': {source info}}``. Build the network as
``SwinTransformer(arch='tiny', img_size=224, window_size=7)`` (Swin-T; the
final norm is ``norm3``, so keep ``out_indices=(3, )``), e.g. as the
``network`` of a ``FrozenTeacher``; for ``SimMIMSwinTransformer`` pass
``allowed_missing=('mask_token',)``. The mapping is in
``mmmoma/checkpoints/swin.py`` (the encoder split in ``moby.py``).
"""
import argparse
from typing import Optional, Sequence

from mmmoma.checkpoints import convert_to_backbone_checkpoint


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Convert an official MoBY Swin release checkpoint '
        '(online encoder encoder.*) to mmpretrain SwinTransformer keys.')
    parser.add_argument(
        'src', help='MoBY release checkpoint (moby_swin_t_*_pretrained.pth)')
    parser.add_argument('dst', help='output backbone file (.pth)')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(argv)
    num_keys = convert_to_backbone_checkpoint(
        args.src, args.dst, expected_format='moby')
    print(f'Wrote {num_keys} keys to {args.dst}')


if __name__ == '__main__':
    main()
