"""How fast a config's train pipeline turns JPEG files into samples, per CPU
core, and how many cores a measured training step rate needs.

A dataloader worker is one process running the dataset's pipeline on one
sample after the other; :func:`measure_pipeline_throughput` does the same in
this process, with one torch and one OpenCV thread (restored afterwards),
and divides the images by the *CPU time* the process spent (so other load
on a shared machine does not lower the figure). Collation and the transfer
to the device are not included.

The GPU data path (``data_path='gpu'`` in a config: decode and augment in
the model's data preprocessor) is measured the same way once
:func:`mmmoma.datasets.gpu_data_path.apply_data_path` has rewritten the
config: the CPU side is then the
bytes-only pipeline, and the decode + augmentation run inside the training
step, whose time includes them.
"""
import copy
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from mmengine.registry import DefaultScope

#: Image suffixes :func:`stand_in_image_paths` picks up.
IMAGE_SUFFIXES = ('.jpeg', '.jpg', '.png')


@dataclass
class PipelineThroughput:
    """What :func:`measure_pipeline_throughput` measured.

    Attributes:
        num_images: Samples produced while timing.
        wall_s: Wall time of those samples.
        cpu_s: CPU time of this process meanwhile (all its threads).
        images_per_s: ``num_images / wall_s`` (one thread).
        images_per_core_s: ``num_images / cpu_s``: images per second of one
            busy core, the rate of one dataloader worker.
        threads: torch and OpenCV threads used (1).
    """
    num_images: int
    wall_s: float
    cpu_s: float
    images_per_s: float
    images_per_core_s: float
    threads: int = 1


def stand_in_image_paths(data_root: str) -> List[str]:
    """The images of a class-per-folder ``DATA_ROOT/train`` (as
    ``tools/dataset_converters/make_stand_in_imagenet.py`` writes), sorted.
    """
    train = Path(data_root) / 'train'
    paths = sorted(
        str(path) for path in train.glob('*/*')
        if path.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise FileNotFoundError(
            f'no images under {train}/<class>/ (make them with tools/'
            'dataset_converters/make_stand_in_imagenet.py)')
    return paths


def _set_threads(threads: int) -> Tuple[int, Optional[int]]:
    """Set torch's and OpenCV's thread counts; return the old ones."""
    old_torch = torch.get_num_threads()
    torch.set_num_threads(threads)
    old_cv2 = None
    try:
        import cv2
        old_cv2 = cv2.getNumThreads()
        cv2.setNumThreads(threads)
    except ImportError:
        pass
    return old_torch, old_cv2


def _restore_threads(old: Tuple[int, Optional[int]]) -> None:
    torch.set_num_threads(old[0])
    if old[1] is not None:
        import cv2
        cv2.setNumThreads(old[1])


def build_pipeline(pipeline_cfg: Sequence[Dict[str, Any]],
                   scope: str = 'mmpretrain'):
    """``mmengine.dataset.Compose`` of the transforms, built from
    mmpretrain's ``TRANSFORMS`` under default scope ``scope``, as
    mmpretrain's datasets build them when the Runner has set the config's
    ``default_scope``."""
    from mmengine.dataset import Compose
    from mmpretrain.registry import TRANSFORMS
    with DefaultScope.overwrite_default_scope(scope):
        return Compose([
            TRANSFORMS.build(copy.deepcopy(transform))
            for transform in pipeline_cfg
        ])


def _sample(path: str, index: int) -> Dict[str, Any]:
    """What an mmpretrain dataset hands its pipeline for one image."""
    return dict(img_path=path, gt_label=0, sample_idx=index)


def measure_pipeline_throughput(pipeline_cfg: Sequence[Dict[str, Any]],
                                image_paths: Sequence[str],
                                num_images: int,
                                scope: str = 'mmpretrain',
                                warmup: int = 4,
                                threads: int = 1) -> PipelineThroughput:
    """Run a train pipeline on ``num_images`` files, one after the other.

    Args:
        pipeline_cfg: The transforms (``LoadImageFromFile`` first, as in a
            config's ``train_dataloader.dataset.pipeline``).
        image_paths: Files to cycle through.
        num_images: Samples to time.
        scope: Default scope to build the transforms in (the config's
            ``default_scope``).
        warmup: Untimed samples first (library initialisation).
        threads: torch / OpenCV threads while measuring.

    Returns:
        The rates, see :class:`PipelineThroughput`.
    """
    if num_images < 1:
        raise ValueError(f'num_images must be >= 1, got {num_images}')
    if not image_paths:
        raise ValueError('image_paths is empty')
    pipeline = build_pipeline(pipeline_cfg, scope)
    old_threads = _set_threads(threads)
    try:
        with DefaultScope.overwrite_default_scope(scope):
            for index in range(warmup):
                pipeline(_sample(image_paths[index % len(image_paths)],
                                 index))
            wall_start = time.perf_counter()
            cpu_start = time.process_time()
            for index in range(num_images):
                path = image_paths[(warmup + index) % len(image_paths)]
                if pipeline(_sample(path, index)) is None:
                    raise RuntimeError(
                        f'the train pipeline dropped the sample {path}')
            cpu_s = time.process_time() - cpu_start
            wall_s = time.perf_counter() - wall_start
    finally:
        _restore_threads(old_threads)
    return PipelineThroughput(
        num_images=num_images,
        wall_s=wall_s,
        cpu_s=cpu_s,
        images_per_s=num_images / wall_s,
        images_per_core_s=num_images / max(cpu_s, 1e-9),
        threads=threads)


def cores_per_gpu(step_images_per_s: float,
                  per_core_images_per_s: float) -> float:
    """CPU cores (dataloader workers at one core each) that produce
    ``step_images_per_s`` samples per second: the step rate over the
    per-core pipeline rate."""
    if per_core_images_per_s <= 0:
        raise ValueError('per_core_images_per_s must be > 0, got '
                         f'{per_core_images_per_s}')
    return step_images_per_s / per_core_images_per_s


def load_real_batch(pipeline_cfg: Sequence[Dict[str, Any]],
                    collate_cfg: Optional[Dict[str, Any]],
                    image_paths: Sequence[str], batch_size: int,
                    scope: str = 'mmpretrain') -> Dict[str, Any]:
    """One batch of real files through the pipeline, collated by
    ``collate_cfg`` (default ``pseudo_collate``, as MMEngine's Runner).

    The training batch of a GPU-data-path config: its bytes-only pipeline
    needs files, not the synthetic arrays of
    :func:`mmmoma.utils.train_batch.build_train_batch`.
    """
    from mmengine.registry import FUNCTIONS
    pipeline = build_pipeline(pipeline_cfg, scope)
    with DefaultScope.overwrite_default_scope(scope):
        samples = [
            pipeline(_sample(image_paths[index % len(image_paths)], index))
            for index in range(batch_size)
        ]
    collate_cfg = copy.deepcopy(
        dict(collate_cfg or dict(type='pseudo_collate')))
    collate_cfg.pop('_scope_', None)
    collate_type = collate_cfg.pop('type')
    collate = FUNCTIONS.get(collate_type) if isinstance(
        collate_type, str) else collate_type
    if collate is None:
        raise ValueError(f'collate_fn: unknown type {collate_type!r}')
    return partial(collate, **collate_cfg)(samples)
