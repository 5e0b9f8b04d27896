"""The checkpoint bridge: pre-training checkpoint -> transfer backbones.

One pre-training checkpoint (any format of :mod:`.detect`; an
mmmoma training checkpoint holds the student as ``backbone.*``) becomes two
backbone-only files:

* ``mmpretrain_backbone.pth``: the keys as trained, for ImageNet / CIFAR
  fine-tuning and linear probing (``configs/benchmarks/mmpretrain``);
* ``mmseg_backbone_<S>px.pth``: the same keys with the ViT ``pos_embed``
  resized (bicubic, CLS entry kept) to the ``S / patch`` grid of the
  segmentation input (512 px for ADE20K; ``configs/benchmarks/mmseg``).

Both load through ``init_cfg=dict(type='StrictPretrained', checkpoint=...)``,
which reports how many tensors matched and fails naming every missing or
unexpected key.

``encoder='teacher'`` takes the EMA encoder instead of the student: the one
the checkpoint declares (``meta['momentum_target']``, written by
``TeacherEMAHook`` from the algorithm's ``MomentumTarget``: SdAE's
``teacher.*``, M-MoCo / M-BYOL's ``momentum_encoder.backbone.*``). MOMA's and
MimCo's teachers are frozen copies of checkpoints the user already has;
convert those files instead.
"""
import os
from pathlib import Path
from typing import Dict, Mapping, Optional, Tuple, Union

from mmengine.logging import print_log
from mmpretrain.models.utils import resize_pos_embed
from torch import Tensor

from .detect import (CheckpointFormatError, detect_checkpoint_format,
                     load_checkpoint_file)
from .export import save_backbone_checkpoint
from .loading import load_backbone_state_dict

ENCODERS = ('student', 'teacher')
STUDENT_PREFIX = 'backbone.'
#: where a training checkpoint declares its momentum target (written by
#: ``TeacherEMAHook`` from the algorithm's ``MomentumTarget.describe()``)
MOMENTUM_TARGET_META = 'momentum_target'
MMPRETRAIN_FILENAME = 'mmpretrain_backbone.pth'
#: fc_norm of an ``out_type='avg_featmap'`` ViT (an ImageNet-fine-tuned
#: classifier, MOMA's ADE20K starting point); unused by feature maps
POOLED_NORM = 'ln2.'


def mmseg_filename(img_size: int) -> str:
    """File name of the mmseg backbone for ``img_size`` px inputs."""
    return f'mmseg_backbone_{img_size}px.pth'


def encoder_prefix(checkpoint: Mapping[str, object], encoder: str) -> str:
    """The key prefix of ``encoder`` in a training checkpoint.

    Args:
        checkpoint (Mapping): a loaded ``'mmpretrain'``-format checkpoint.
        encoder (str): ``'student'`` (``backbone.*``) or ``'teacher'`` (the
            transferable EMA encoder the checkpoint declares in
            ``meta['momentum_target']['transfer_prefix']``: SdAE's teacher,
            M-MoCo's momentum encoder; the algorithm's ``MomentumTarget``
            names it, ``TeacherEMAHook`` writes it).

    Returns:
        str: the prefix, ending in ``'.'``.

    Raises:
        ValueError: unknown ``encoder``.
        CheckpointFormatError: the checkpoint declares no transferable EMA
            encoder, or its keys are missing.
    """
    if encoder not in ENCODERS:
        raise ValueError(
            f'encoder must be one of {ENCODERS}, got {encoder!r}')
    if encoder == 'student':
        return STUDENT_PREFIX
    keys = list(checkpoint['state_dict'])
    meta = checkpoint.get('meta')
    target = meta.get(MOMENTUM_TARGET_META) if isinstance(meta,
                                                          Mapping) else None
    prefix = target.get('transfer_prefix') if isinstance(target,
                                                         Mapping) else None
    first_parts = sorted({key.split('.', 1)[0] + '.' for key in keys})
    if not prefix:
        owner = f' ({target.get("owner")}: its momentum target is not an ' \
            'encoder)' if isinstance(target, Mapping) else ''
        raise CheckpointFormatError(
            "--encoder teacher needs an EMA teacher whose key prefix the "
            "checkpoint declares in meta['momentum_target'] (TeacherEMAHook"
            " writes it for algorithms whose momentum target is an encoder, "
            "e.g. SdAE's teacher.*, M-MoCo's momentum_encoder.backbone.*)"
            f'{owner}; this checkpoint declares none and has {first_parts}. '
            'A frozen teacher (MOMA, MimCo) is the checkpoint you gave its '
            'config: convert that file.')
    if not any(key.startswith(prefix) for key in keys):
        raise CheckpointFormatError(
            f"meta['momentum_target'] declares the EMA encoder {prefix}*, "
            f'but the state dict has no such key (it has {first_parts})')
    return prefix


def vit_grid(state_dict: Mapping[str, Tensor]) -> Tuple[int, int, int]:
    """Patch size, position-embedding grid side and extra tokens of a ViT.

    Args:
        state_dict (Mapping[str, Tensor]): mmpretrain ``VisionTransformer``
            keys (``patch_embed.projection.weight``, ``pos_embed``).

    Returns:
        tuple: (patch size, grid side, number of extra tokens).
    """
    patch_size = state_dict['patch_embed.projection.weight'].shape[-1]
    num_extra = 1 if 'cls_token' in state_dict else 0
    num_patches = state_dict['pos_embed'].shape[1] - num_extra
    side = int(round(num_patches**0.5))
    if side * side != num_patches:
        raise CheckpointFormatError(
            f'pos_embed holds {num_patches} patch positions, not a square '
            'grid')
    return patch_size, side, num_extra


def resize_for_image_size(state_dict: Mapping[str, Tensor],
                          img_size: int) -> 'Dict[str, Tensor]':
    """Resize a ViT ``pos_embed`` to the grid of ``img_size`` px inputs.

    The same bicubic interpolation (mmpretrain ``resize_pos_embed``) that a
    ``VisionTransformer`` applies to a differently sized input at run time,
    so a model built at ``img_size`` with the resized table computes what
    the original computes on ``img_size`` inputs.

    Args:
        state_dict (Mapping[str, Tensor]): ViT keys; a backbone without
            ``pos_embed`` (e.g. Swin) is returned unchanged.
        img_size (int): input side in pixels; a multiple of the patch size.

    Returns:
        dict: a new state dict; ``pos_embed`` of shape
        (1, extra + (img_size / p)^2, C).
    """
    resized = dict(state_dict)
    if 'pos_embed' not in state_dict:
        return resized
    patch_size, side, num_extra = vit_grid(state_dict)
    if img_size <= 0 or img_size % patch_size:
        raise ValueError(
            f'--seg-img-size must be a positive multiple of the patch size '
            f'{patch_size}, got {img_size}')
    new_side = img_size // patch_size
    if new_side != side:
        resized['pos_embed'] = resize_pos_embed(
            state_dict['pos_embed'], (side, side), (new_side, new_side),
            mode='bicubic', num_extra_tokens=num_extra)
    return resized


def export_transfer_backbones(src: Union[str, os.PathLike],
                              out_dir: Union[str, os.PathLike],
                              encoder: str = 'student',
                              seg_img_size: int = 512,
                              show_progress: bool = True
                              ) -> Dict[str, Path]:
    """Write the mmpretrain and mmseg backbone files of ``src``.

    Args:
        src (str | PathLike): pre-training checkpoint (any recognised
            format).
        out_dir (str | PathLike): output folder (created).
        encoder (str): ``'student'`` or ``'teacher'`` (EMA teacher; mmmoma
            training checkpoints only).
        seg_img_size (int): segmentation input size in pixels.
        show_progress (bool): progress bar over the keys.

    Returns:
        dict: ``{'mmpretrain': path, 'mmseg': path}``.
    """
    checkpoint = load_checkpoint_file(src)
    source_format = detect_checkpoint_format(checkpoint)
    prefix: Optional[str] = None
    if source_format == 'mmpretrain':
        prefix = encoder_prefix(checkpoint, encoder)
    elif encoder != 'student':
        raise CheckpointFormatError(
            f'--encoder teacher needs an mmmoma training checkpoint; '
            f'{str(src)!r} is a {source_format!r} checkpoint')
    state_dict = load_backbone_state_dict(
        checkpoint, prefix=prefix or STUDENT_PREFIX,
        show_progress=show_progress)
    meta: Dict[str, object] = dict(
        source=str(src), source_format=source_format, encoder=encoder,
        converter='tools/model_converters/pretrain_to_transfer.py')
    if prefix is not None:
        meta['source_prefix'] = prefix
    source_meta = checkpoint.get('meta')
    if isinstance(source_meta, Mapping):
        for key in ('epoch', 'iter', 'experiment_name'):
            if isinstance(source_meta.get(key), (str, int)):
                meta[f'source_{key}'] = source_meta[key]
    if 'pos_embed' in state_dict:
        patch_size, side, _ = vit_grid(state_dict)
        meta.update(patch_size=patch_size, pretrain_img_size=side * patch_size)

    out_dir = Path(out_dir)
    paths = dict(mmpretrain=out_dir / MMPRETRAIN_FILENAME,
                 mmseg=out_dir / mmseg_filename(seg_img_size))
    save_backbone_checkpoint(state_dict, paths['mmpretrain'], meta)
    seg_state = resize_for_image_size(state_dict, seg_img_size)
    pooled_norm = [key for key in seg_state if key.startswith(POOLED_NORM)]
    for key in pooled_norm:  # a fine-tuned classifier's fc_norm
        del seg_state[key]
    if pooled_norm:
        print_log(
            f'mmseg backbone: dropped the classifier\'s pooled norm '
            f'{pooled_norm} (feature maps do not use it)',
            logger='current')
    save_backbone_checkpoint(seg_state, paths['mmseg'],
                             dict(meta, img_size=seg_img_size))
    print_log(
        f'{len(state_dict)} tensors of the {encoder} '
        f'({prefix or source_format}) -> {paths["mmpretrain"]}, '
        f'{paths["mmseg"]}'
        + (f' (pos_embed {tuple(state_dict["pos_embed"].shape)} -> '
           f'{tuple(seg_state["pos_embed"].shape)})'
           if 'pos_embed' in state_dict else ''),
        logger='current')
    return paths
