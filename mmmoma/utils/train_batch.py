"""One real training batch of a config without its data: the config's train
pipeline on synthetic images, collated as its dataloader collates."""
import copy
from functools import partial
from typing import Any, Dict, List, Tuple

import numpy as np
import torch
from mmengine.config import Config

from .config_tools import find_train_pipeline

#: Transforms left out of the pipeline: the images are made, not read.
SKIPPED_TRANSFORMS = ('LoadImageFromFile', )


def build_train_batch(cfg: Config, batch_size: int, img_size: int,
                      seed: int) -> Dict[str, Any]:
    """One collated training batch from the config's train pipeline.

    The pipeline (minus :data:`SKIPPED_TRANSFORMS`) runs on random uint8 BGR
    images of ``8/7 · img_size`` pixels (the 256 → 224 ratio); the samples
    are collated by the config's ``train_dataloader.collate_fn`` (default
    ``pseudo_collate``, as in MMEngine's Runner), so multi-view pipelines
    give the model what it expects.

    Args:
        cfg: The config (its train pipeline sized for ``img_size``).
        batch_size: Samples in the batch.
        img_size: The crop size the pipeline produces.
        seed: Seed of the synthetic images.

    Returns:
        What the dataloader would yield (``inputs``, ``data_samples``).

    Raises:
        RuntimeError: If a transform drops a sample.
        ValueError: If the collate function is unknown.
    """
    from mmengine.registry import FUNCTIONS
    from mmpretrain.registry import TRANSFORMS
    pipeline = [
        TRANSFORMS.build(transform) for transform in find_train_pipeline(cfg)
        if transform.get('type') not in SKIPPED_TRANSFORMS
    ]
    rng = np.random.default_rng(seed)
    source_size = max(img_size, round(img_size * 8 / 7))
    samples = []
    for index in range(batch_size):
        image = rng.integers(0, 256, (source_size, source_size, 3),
                             dtype=np.uint8)
        results = dict(
            img=image,
            img_shape=image.shape[:2],
            ori_shape=image.shape[:2],
            img_path=f'synthetic_{index}.png',
            sample_idx=index)
        for transform in pipeline:
            results = transform(results)
            if results is None:
                raise RuntimeError(f'train pipeline transform {transform!r} '
                                   'dropped a synthetic sample')
        samples.append(results)

    collate_cfg = copy.deepcopy(
        cfg.train_dataloader.get('collate_fn', dict(type='pseudo_collate')))
    collate_cfg.pop('_scope_', None)  # added to configs inheriting pkg::
    collate_type = collate_cfg.pop('type')
    collate = FUNCTIONS.get(collate_type) if isinstance(
        collate_type, str) else collate_type
    if collate is None:
        raise ValueError(f'train_dataloader.collate_fn: unknown type '
                         f'{collate_type!r}')
    return partial(collate, **collate_cfg)(samples)


def image_sizes(inputs: Any) -> List[Tuple[int, int]]:
    """Spatial sizes of the image tensors (N, C, H, W) in a pre-processed
    ``inputs`` (a tensor, or lists / dicts of them)."""
    if isinstance(inputs, torch.Tensor) and inputs.dim() == 4:
        return [tuple(inputs.shape[-2:])]
    if isinstance(inputs, (list, tuple)):
        return [size for item in inputs for size in image_sizes(item)]
    if isinstance(inputs, dict):
        return [size for item in inputs.values() for size in image_sizes(item)]
    return []
