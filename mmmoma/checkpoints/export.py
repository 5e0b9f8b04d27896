"""Write backbone-only checkpoint files (the model converters' output).

:func:`save_backbone_checkpoint` writes ``{'state_dict': {backbone keys},
'meta': {'checkpoint_format': 'backbone', ...}}``, the ``'backbone'`` format
of :mod:`.detect`; :func:`convert_to_backbone_checkpoint` is the body of the
``tools/model_converters/*.py`` CLIs: read a checkpoint of the expected
format, take its backbone (:func:`.loading.load_backbone_state_dict`), and
write it with where it came from.
"""
import os
from collections import OrderedDict
from pathlib import Path
from typing import Dict, Mapping, Optional, Union

import torch
from torch import Tensor

from .detect import (BACKBONE_META_KEY, CHECKPOINT_FORMATS,
                     CheckpointFormatError, detect_checkpoint_format,
                     load_checkpoint_file, naming_file)
from .loading import load_backbone_state_dict

__all__ = ['save_backbone_checkpoint', 'convert_to_backbone_checkpoint']


def save_backbone_checkpoint(
        state_dict: Mapping[str, Tensor],
        path: Union[str, os.PathLike],
        meta: Optional[Mapping[str, object]] = None) -> None:
    """Write a backbone-only file ``{'state_dict': ..., 'meta': ...}``.

    MMEngine's checkpoint loader unwraps ``'state_dict'``, so the file works
    as ``init_cfg=dict(type='Pretrained', checkpoint=path)`` of a backbone.
    ``meta['checkpoint_format']`` is set to ``'backbone'``.

    Args:
        state_dict (Mapping[str, Tensor]): backbone keys, no prefix.
        path (str | PathLike): output file; parent folders are created.
        meta (Mapping, optional): source information (plain Python values, so
            the file loads with ``weights_only=True``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    full_meta = dict(meta or {})
    full_meta[BACKBONE_META_KEY] = 'backbone'
    torch.save(dict(state_dict=OrderedDict(state_dict), meta=full_meta), path)


def convert_to_backbone_checkpoint(src: Union[str, os.PathLike],
                                   dst: Union[str, os.PathLike],
                                   expected_format: str,
                                   prefix: str = 'backbone.',
                                   show_progress: bool = True) -> int:
    """Convert ``src`` to a backbone-only file at ``dst`` (the CLIs' body).

    Args:
        src (str | PathLike): source checkpoint.
        dst (str | PathLike): output file (must differ from ``src``).
        expected_format (str): the format ``src`` must be in, one of
            :data:`CHECKPOINT_FORMATS`.
        prefix (str): sub-module of an ``'mmpretrain'`` checkpoint.
        show_progress (bool): show a progress bar over the keys.

    Returns:
        int: number of keys written.

    Raises:
        ValueError: ``expected_format`` is unknown or ``dst`` is ``src``.
        CheckpointFormatError: ``src`` is in another format.
    """
    if expected_format not in CHECKPOINT_FORMATS:
        raise ValueError(
            f'expected_format must be one of '
            f'{list(CHECKPOINT_FORMATS)}, got {expected_format!r}')
    if Path(dst).resolve() == Path(src).resolve():
        raise ValueError(f'dst must differ from src, got {str(dst)!r} twice')
    checkpoint = load_checkpoint_file(src)
    source_format = detect_checkpoint_format(checkpoint)
    if source_format != expected_format:
        raise CheckpointFormatError(
            f'{str(src)!r} is a {source_format!r} checkpoint '
            f'({CHECKPOINT_FORMATS[source_format]}), but this converter reads '
            f'{expected_format!r} ({CHECKPOINT_FORMATS[expected_format]}). '
            f'Converters: tools/model_converters/mae_to_mmpretrain.py (mae), '
            f'mocov3_to_mmpretrain.py (mocov3), moby_to_mmpretrain.py '
            f'(moby), extract_backbone.py (mmpretrain); a backbone file '
            f'needs no conversion.')
    with naming_file(src):
        state_dict = load_backbone_state_dict(
            checkpoint, prefix=prefix, show_progress=show_progress)
    meta: Dict[str, object] = dict(
        source=str(src),
        source_format=source_format,
        converter='mmmoma.checkpoints.export')
    if source_format == 'mmpretrain':
        meta['source_prefix'] = prefix
        source_meta = checkpoint.get('meta')
        if isinstance(source_meta, Mapping):
            for key in ('epoch', 'iter', 'experiment_name'):
                if key in source_meta:
                    meta[f'source_{key}'] = source_meta[key]
    if source_format in ('mocov3', 'moby'):
        for key in ('arch', 'epoch'):
            if isinstance(checkpoint.get(key), (str, int)):
                meta[f'source_{key}'] = checkpoint[key]
    save_backbone_checkpoint(state_dict, dst, meta)
    return len(state_dict)
