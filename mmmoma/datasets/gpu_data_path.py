"""Move a config's train augmentation from the dataloader to the device.

``data_path = 'gpu'`` (top-level config field; ``tools/train.py CONFIG
--cfg-options data_path=gpu``) rewrites the config so that the dataloader
workers only read the files (``LoadEncodedImage`` + ``PackInputs``,
``pseudo_collate``) and ``GPUAugmentDataPreprocessor`` decodes and builds
the views on the model's device, with the crops, flips and augmentations of
the CPU pipeline (see :func:`to_gpu_data_path` for what translates).
"""
import copy
import numbers
from typing import Any, Dict, List, Optional, Tuple

from mmengine.config import Config
from mmpretrain.registry import TRANSFORMS

#: The values of the ``data_path`` config field.
DATA_PATHS = ('cpu', 'gpu')

#: The CPU transforms that have a GPU data path equivalent.
SUPPORTED_TRANSFORMS = ('LoadImageFromFile', 'RandomResizedCrop',
                        'RandomFlip', 'MultiView', 'ContrastiveViews',
                        'RandomApply', 'ColorJitter', 'RandomGrayscale',
                        'GaussianBlur', 'Solarize', 'PackInputs')

PREPROCESSOR = 'GPUAugmentDataPreprocessor'
BYTES_TRANSFORM = 'LoadEncodedImage'

Spec = Dict[str, Any]


def _error(field: str, transform: Any, why: str = '') -> ValueError:
    kind = transform.get('type') if isinstance(transform, dict) else (
        type(transform).__name__)
    return ValueError(
        f'data_path=gpu: {field} ({kind!r}) has no GPU data path equivalent'
        f'{": " + why if why else ""}. Supported transforms: '
        f'{", ".join(SUPPORTED_TRANSFORMS)}. Use data_path=cpu for this '
        'config.')


def _type(transform: Any) -> Optional[str]:
    return transform.get('type') if isinstance(transform, dict) else None


def _crop(transform: dict, field: str) -> Spec:
    """A ``RandomResizedCrop`` config → a crop spec (without flip)."""
    crop = TRANSFORMS.build(copy.deepcopy(dict(transform)))
    if crop.interpolation not in ('bicubic', 'bilinear', 'nearest'):
        raise _error(field, transform,
                     f'interpolation {crop.interpolation!r}')
    return dict(
        size=tuple(crop.scale),
        scale=tuple(crop.crop_ratio_range),
        ratio=tuple(crop.aspect_ratio_range),
        max_attempts=crop.max_attempts,
        interpolation=crop.interpolation,
        antialias=crop.backend == 'pillow')  # cv2.resize has no low-pass


def _flip_prob(transform: dict, field: str) -> float:
    prob = transform.get('prob')
    direction = transform.get('direction', 'horizontal')
    if not isinstance(prob, numbers.Real) or direction != 'horizontal':
        raise _error(field, transform,
                     'only a horizontal flip with one float prob')
    return float(prob)


def _augmentation(transform: Any, field: str) -> Spec:
    """One photometric transform config → a view augmentation spec."""
    kind = _type(transform)
    if kind == 'RandomApply':
        inner = transform.get('transforms')
        inner = inner if isinstance(inner, (list, tuple)) else [inner]
        if len(inner) != 1 or _type(inner[0]) != 'ColorJitter':
            raise _error(field, transform,
                         'RandomApply translates around one ColorJitter')
        spec = _augmentation(inner[0], f'{field}.transforms[0]')
        spec['prob'] = float(transform.get('prob', 0.5))
        return spec
    if kind == 'ColorJitter':
        jitter = TRANSFORMS.build(copy.deepcopy(dict(transform)))
        return dict(
            type='ColorJitter',
            brightness=jitter.brightness,
            contrast=jitter.contrast,
            saturation=jitter.saturation,
            hue=jitter.hue,
            prob=1.)
    if kind == 'RandomGrayscale':
        if not transform.get('keep_channels', False):
            raise _error(field, transform, 'needs keep_channels=True')
        weights = tuple(transform.get('channel_weights', (1., 1., 1.)))
        if transform.get('color_format', 'bgr') == 'bgr':
            weights = weights[::-1]  # the CPU pipeline's images are BGR
        elif transform.get('color_format') != 'rgb':
            raise _error(field, transform, 'color_format must be bgr/rgb')
        return dict(
            type='Grayscale',
            weights=weights,
            prob=float(transform.get('prob', 0.1)))
    if kind == 'GaussianBlur':
        blur = TRANSFORMS.build(copy.deepcopy(dict(transform)))
        if blur.radius is not None:
            sigma = (float(blur.radius), ) * 2
        else:
            low, high = blur.magnitude_range
            top = low + blur.magnitude_level / blur.total_level * (high - low)
            if blur.magnitude_std == 'inf':
                sigma = (low, top)
            elif blur.magnitude_std <= 0:
                sigma = (top, top)
            else:
                raise _error(field, transform,
                             'normally distributed radius')
        return dict(type='GaussianBlur', sigma=sigma, prob=blur.prob)
    if kind == 'Solarize':
        solarize = TRANSFORMS.build(copy.deepcopy(dict(transform)))
        if solarize.thr is None:
            raise _error(field, transform, 'needs a fixed thr')
        return dict(
            type='Solarize', threshold=solarize.thr, prob=solarize.prob)
    raise _error(field, transform)


def _segment(transforms: List[Any],
             field: str,
             first_index: int = 0) -> Tuple[Optional[Spec], List[Spec]]:
    """``[RandomResizedCrop [RandomFlip]] augmentation*`` → (crop, augs);
    ``transforms[i]`` is ``field[first_index + i]``."""
    crop, augmentations = None, []
    for index, transform in enumerate(transforms, first_index):
        item = f'{field}[{index}]'
        kind = _type(transform)
        if kind == 'RandomResizedCrop' and crop is None and not augmentations:
            crop = _crop(transform, item)
        elif (kind == 'RandomFlip' and crop is not None
              and 'flip_prob' not in crop and not augmentations):
            crop['flip_prob'] = _flip_prob(transform, item)
        elif kind in ('RandomResizedCrop', 'RandomFlip'):
            raise _error(item, transform,
                         'one crop, then its flip, before the colour '
                         'augmentations')
        else:
            augmentations.append(_augmentation(transform, item))
    return crop, augmentations


def _contrastive_views(transform: dict,
                       field: str) -> Tuple[List[Spec], List[Spec]]:
    """``ContrastiveViews`` → (crops, views), with its own defaults."""
    from .transforms.contrastive_views import default_view_pipelines

    # built without its view pipelines (read from the config below), only
    # for the crop / flip / mode defaults
    built = TRANSFORMS.build(
        dict(copy.deepcopy(dict(transform)), view_pipelines=[[], []]))
    rrc = built.random_resized_crop
    crop = dict(
        size=tuple(rrc.scale),
        scale=tuple(rrc.crop_ratio_range),
        ratio=tuple(rrc.aspect_ratio_range),
        max_attempts=rrc.max_attempts,
        interpolation=rrc.interpolation,
        antialias=rrc.backend == 'pillow',
        flip_prob=float(built.random_flip.prob))
    pipelines = transform.get('view_pipelines')
    if pipelines is None:
        pipelines = default_view_pipelines(built.mode)
    views = []
    for index, pipeline in enumerate(pipelines):
        augmentations = [
            _augmentation(t, f'{field}.view_pipelines[{index}][{i}]')
            for i, t in enumerate(pipeline)
        ]
        views.append(dict(augmentations=augmentations))
    if built.mode == 'strong':  # two independent crops
        return [crop, copy.deepcopy(crop)], [
            dict(view, crop=index) for index, view in enumerate(views)
        ]
    if built.mode == 'medium':  # two windows of one larger crop
        crop['windows'] = dict(size=built.crop_size, max_shift=built.max_shift)
        return [crop], [
            dict(view, crop=0, window=index)
            for index, view in enumerate(views)
        ]
    return [crop], [dict(view, crop=0) for view in views]  # light


def _multi_view(transform: dict, field: str,
                shared_crop: Optional[Spec]) -> Tuple[List[Spec], List[Spec]]:
    """``MultiView`` (after the shared crop, or with a crop per view)."""
    num_views = transform.get('num_views')
    groups = transform.get('transforms')
    if isinstance(num_views, int):
        num_views = [num_views]
    crops = [] if shared_crop is None else [shared_crop]
    views = []
    for group, (count, pipeline) in enumerate(zip(num_views, groups)):
        crop, augmentations = _segment(list(pipeline),
                                       f'{field}.transforms[{group}]')
        if (crop is None) == (shared_crop is None):
            raise _error(
                f'{field}.transforms[{group}]', transform,
                'each view needs exactly one RandomResizedCrop (shared '
                'before MultiView, or its own inside it)')
        for _ in range(count):
            if crop is not None:  # every copy draws its own crop
                crops.append(copy.deepcopy(crop))
            views.append(
                dict(
                    crop=len(crops) - 1 if crop is not None else 0,
                    augmentations=copy.deepcopy(augmentations)))
    return crops, views


def _pipeline_owner(cfg: Config) -> Tuple[dict, str]:
    """The dataset dict holding the train pipeline and its field name."""
    field = 'train_dataloader.dataset'
    dataset = cfg.get('train_dataloader', {}).get('dataset')
    while isinstance(dataset, dict):
        if 'pipeline' in dataset:
            return dataset, f'{field}.pipeline'
        dataset, field = dataset.get('dataset'), f'{field}.dataset'
    raise ValueError('data_path=gpu: the config has no '
                     'train_dataloader.dataset.pipeline')


def translate_pipeline(pipeline: List[Any],
                       field: str) -> Tuple[List[Any], Spec]:
    """A CPU train pipeline → (bytes pipeline, crops / views spec).

    Args:
        pipeline: Transform configs, ``LoadImageFromFile`` first and
            ``PackInputs`` last.
        field: The pipeline's config field, for error messages.

    Returns:
        ``([LoadEncodedImage, PackInputs], dict(crops=..., views=...))``.

    Raises:
        ValueError: Naming ``field[i]``, the transform type and the supported
            types, for a transform (or an arrangement) with no equivalent.
    """
    pipeline = list(pipeline)
    if not pipeline or _type(pipeline[0]) != 'LoadImageFromFile':
        raise _error(f'{field}[0]', pipeline[0] if pipeline else {},
                     'the pipeline must start with LoadImageFromFile')
    load = pipeline[0]
    if load.get('color_type', 'color') != 'color':
        raise _error(f'{field}[0]', load, 'color_type must be "color"')
    pack_index = len(pipeline) - 1
    if _type(pipeline[-1]) != 'PackInputs' or pipeline[-1].get(
            'input_key', 'img') != 'img':
        raise _error(f'{field}[{pack_index}]', pipeline[-1],
                     'the pipeline must end with PackInputs of img')
    body = pipeline[1:pack_index]
    kinds = [_type(t) for t in body]
    split = next((i for i, k in enumerate(kinds)
                  if k in ('MultiView', 'ContrastiveViews')), len(body))
    if split + 1 < len(body):
        raise _error(f'{field}[{split + 2}]', body[split + 1],
                     'nothing may follow MultiView / ContrastiveViews but '
                     'PackInputs')
    shared_crop, shared_augs = _segment(body[:split], field, first_index=1)
    if split < len(body) and shared_augs:
        raise _error(f'{field}[{split + 1}]', body[split],
                     'colour augmentations before the views split would be '
                     'shared by the views')
    if split == len(body):
        if shared_crop is None:
            raise _error(field, {'type': None}, 'no RandomResizedCrop')
        crops, views = [shared_crop], [dict(crop=0, augmentations=shared_augs)]
    elif kinds[split] == 'ContrastiveViews':
        if shared_crop is not None:
            raise _error(f'{field}[{split + 1}]', body[split],
                         'ContrastiveViews after a crop')
        crops, views = _contrastive_views(body[split], f'{field}[{split + 1}]')
    else:
        crops, views = _multi_view(body[split], f'{field}[{split + 1}]',
                                   shared_crop)
    for crop in crops:
        crop.setdefault('flip_prob', 0.)
    load_bytes = dict(type=BYTES_TRANSFORM)
    if load.get('backend_args') is not None:
        load_bytes['backend_args'] = copy.deepcopy(load['backend_args'])
    return [load_bytes, copy.deepcopy(pipeline[-1])], dict(
        crops=crops, views=views)


def _preprocessor_field(cfg: Config) -> Tuple[dict, str]:
    """The data preprocessor the Runner gives the model, and its field."""
    if cfg.get('model', {}).get('data_preprocessor') is not None:
        return cfg.model.data_preprocessor, 'model.data_preprocessor'
    if cfg.get('data_preprocessor') is not None:
        return cfg.data_preprocessor, 'data_preprocessor'
    return {}, 'model.data_preprocessor'


def to_gpu_data_path(cfg: Config) -> Config:
    """The config with its train augmentation on the device.

    Translates ``LoadImageFromFile``, ``RandomResizedCrop``, ``RandomFlip``,
    ``MultiView``, ``ContrastiveViews``, ``RandomApply(ColorJitter)``,
    ``RandomGrayscale``, ``GaussianBlur``, ``Solarize`` and ``PackInputs``
    into: pipeline ``[LoadEncodedImage, PackInputs]``,
    ``collate_fn=pseudo_collate``, and ``model.data_preprocessor`` (and a
    top-level ``data_preprocessor``) = ``GPUAugmentDataPreprocessor`` with
    the same crops, views and mean / std. An already translated config is
    returned as it is.

    Args:
        cfg: A loaded config; not modified.

    Returns:
        A translated copy.

    Raises:
        ValueError: For an untranslatable transform (naming its field,
            ``train_dataloader.dataset.pipeline[i]``, its type and the
            supported types) or a CPU data preprocessor other than an RGB
            ``SelfSupDataPreprocessor``.
    """
    cfg = copy.deepcopy(cfg)
    owner, field = _pipeline_owner(cfg)
    old, old_field = _preprocessor_field(cfg)
    if old.get('type') == PREPROCESSOR:
        return cfg
    if old.get('type') != 'SelfSupDataPreprocessor':
        # an untyped one is the model's default (ClsDataPreprocessor for a
        # classifier: labels, batch augments), which the GPU path is not
        raise ValueError(f'data_path=gpu: {old_field}.type must be '
                         f'SelfSupDataPreprocessor (pre-training), got '
                         f'{old.get("type")!r}')
    if not (old.get('to_rgb') or old.get('bgr_to_rgb')):
        raise ValueError(f'data_path=gpu: {old_field}.to_rgb must be True '
                         '(the GPU path decodes to RGB)')
    pipeline, spec = translate_pipeline(owner['pipeline'], field)
    mean = old.get('mean') or (0., 0., 0.)
    std = old.get('std') or (1., 1., 1.)
    preprocessor = dict(
        type=PREPROCESSOR, mean=list(mean), std=list(std), **spec)
    owner['pipeline'] = pipeline
    cfg.train_dataloader.collate_fn = dict(type='pseudo_collate')
    cfg.model.data_preprocessor = preprocessor
    if cfg.get('data_preprocessor') is not None:
        cfg.data_preprocessor = copy.deepcopy(preprocessor)
    return cfg


def apply_data_path(cfg: Config) -> Config:
    """``cfg`` as is for ``data_path='cpu'`` (the default), translated by
    :func:`to_gpu_data_path` for ``'gpu'``.

    Raises:
        ValueError: If ``data_path`` is another value, or (``'gpu'``) the
            pipeline does not translate.
    """
    data_path = cfg.get('data_path', 'cpu')
    if data_path not in DATA_PATHS:
        raise ValueError(f'data_path must be one of {DATA_PATHS}, got '
                         f'{data_path!r}')
    return to_gpu_data_path(cfg) if data_path == 'gpu' else cfg
