"""The two pre-training views of M-MoCo / M-BYOL (§4.1 of the paper)."""
import copy
import numbers
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from mmcv.transforms import BaseTransform, Compose, RandomFlip
from mmcv.transforms.utils import cache_randomness
from mmpretrain.datasets.transforms import RandomResizedCrop
from mmpretrain.registry import TRANSFORMS

TransformConfig = Union[dict, Callable[[dict], Optional[dict]]]

# MoCo v3's colour augmentation (mmpretrain's
# configs/mocov3/mocov3_vit-small-p16_16xb256-amp-coslr-300e_in1k.py).
MOCOV3_COLOR_AUGMENTATION: List[dict] = [
    dict(
        type='RandomApply',
        transforms=[
            dict(
                type='ColorJitter',
                brightness=0.4,
                contrast=0.4,
                saturation=0.2,
                hue=0.1)
        ],
        prob=0.8),
    dict(
        type='RandomGrayscale',
        prob=0.2,
        keep_channels=True,
        channel_weights=(0.114, 0.587, 0.2989)),
]


def mocov3_view_pipeline(blur_prob: float,
                         solarize_prob: float) -> List[dict]:
    """One of MoCo v3's asymmetric view pipelines, without crop and flip.

    Args:
        blur_prob (float): Probability of the Gaussian blur (sigma drawn
            uniformly from [0.1, 2.0]).
        solarize_prob (float): Probability of solarizing at threshold 128.

    Returns:
        list[dict]: Transform configs: colour jitter, grayscale, blur and
        solarize.
    """
    return copy.deepcopy(MOCOV3_COLOR_AUGMENTATION) + [
        dict(
            type='GaussianBlur',
            magnitude_range=(0.1, 2.0),
            magnitude_std='inf',
            prob=blur_prob),
        dict(type='Solarize', thr=128, prob=solarize_prob),
    ]


def default_view_pipelines(mode: str) -> List[List[dict]]:
    """The per-view pipelines that ``ContrastiveViews`` uses by default.

    Args:
        mode (str): One of ``ContrastiveViews.MODES``.

    Returns:
        list[list[dict]]: Two lists of transform configs. ``'strong'``:
        MoCo v3's asymmetric pipelines (view 1 always blurred and never
        solarized, view 2 blurred with probability 0.1 and solarized with
        probability 0.2). ``'medium'`` and ``'light'``: MoCo v3's colour
        augmentation (jitter + grayscale) for both views.
    """
    if mode == 'strong':
        return [
            mocov3_view_pipeline(blur_prob=1.0, solarize_prob=0.0),
            mocov3_view_pipeline(blur_prob=0.1, solarize_prob=0.2),
        ]
    return [copy.deepcopy(MOCOV3_COLOR_AUGMENTATION) for _ in range(2)]


def _is_positive_int(value) -> bool:
    return (isinstance(value, numbers.Integral)
            and not isinstance(value, bool) and value > 0)


def _is_range(value, low: float, high: float) -> bool:
    """Whether ``value`` is a pair ``(min, max)`` with
    ``low < min <= max <= high``."""
    return (isinstance(value, Sequence) and len(value) == 2
            and all(isinstance(v, numbers.Real) for v in value)
            and low < value[0] <= value[1] <= high)


@TRANSFORMS.register_module()
class ContrastiveViews(BaseTransform):
    """Two augmented views of one image, in one of M-MoCo's three modes.

    §4.1 of the M-MoCo paper compares three pre-training augmentations
    (light is the paper's default, Table 8):

    - ``'strong'`` (MoCo v3 / BYOL): two independent random resized crops,
      each flipped at random, then colour augmentation and Gaussian blur,
      and solarization of one of the crops.
    - ``'medium'``: one random resized crop of side
      ``crop_size + max_shift`` (256 for 224 views), flipped at random, then
      two ``crop_size`` crops along its diagonal, a random distance of 0 to
      ``max_shift`` pixels apart, then colour augmentation.
    - ``'light'``: one shared random resized crop of side ``crop_size``,
      flipped at random, then colour augmentation drawn twice,
      independently.

    Where the paper is silent this transform chooses:

    - the crop scale range: MoCo v3's for ViT, ``(0.08, 1.0)``, with
      aspect ratios in ``(3/4, 4/3)``, for every mode's random resized crop;
    - the colour augmentation: MoCo v3's (``RandomApply(ColorJitter(0.4,
      0.4, 0.2, 0.1), p=0.8)`` + ``RandomGrayscale(p=0.2)``), and for
      ``'strong'`` exactly MoCo v3's asymmetric pipelines (blur p=1.0 / 0.1,
      solarize p=0.0 / 0.2); medium and light add no blur or solarization;
    - the diagonal shift: the distance ``d ~ U{0, ..., max_shift}``, the
      upper-left crop at ``(s, s)`` with ``s ~ U{0, ..., max_shift - d}``,
      the other at ``(s + d, s + d)``, and a fair coin decides which view
      gets the upper-left crop.

    All randomness comes from numpy's and python's global generators, as in
    mmcv's transforms, so MMEngine's seeding makes the views reproducible.

    The output mimics mmpretrain's ``MultiView``: ``results['img']`` becomes
    a list of the two views, each an ``(crop_size, crop_size, C)`` uint8
    array, so ``PackInputs`` afterwards gives a list of two
    ``(C, crop_size, crop_size)`` tensors. ``img_shape`` becomes
    ``(crop_size, crop_size)``; every other key is kept as it was.

    **Required Keys:** img

    **Modified Keys:** img, img_shape

    Args:
        mode (str): ``'strong'``, ``'medium'`` or ``'light'``.
            Defaults to ``'light'``.
        crop_size (int): Side of each output view in pixels. Defaults to 224.
        crop_scale (tuple[float, float]): Range of the random resized crop's
            area as a fraction of the image's area. Defaults to (0.08, 1.0).
        crop_ratio (tuple[float, float]): Range of the random resized crop's
            aspect ratio (width / height). Defaults to (3/4, 4/3).
        max_shift (int): Largest diagonal distance in pixels between the two
            ``'medium'`` crops; the shared crop has side
            ``crop_size + max_shift``. Unused by the other modes.
            Defaults to 32.
        flip_prob (float): Probability of a horizontal flip of each crop
            (of the shared crop in ``'medium'`` and ``'light'``).
            Defaults to 0.5.
        view_pipelines (list[list[dict | callable]], optional): Exactly two
            pipelines (lists of transform configs or transforms), applied to
            view 1 and view 2 after cropping. ``None`` uses the mode's
            defaults (see :func:`default_view_pipelines`). ``[[], []]``
            disables colour augmentation. Defaults to None.
        backend (str): Resize backend of the random resized crop, ``'cv2'``
            or ``'pillow'``. Defaults to ``'pillow'`` (as MoCo v3).
    """

    MODES = ('strong', 'medium', 'light')
    BACKENDS = ('cv2', 'pillow')

    def __init__(self,
                 mode: str = 'light',
                 crop_size: int = 224,
                 crop_scale: Tuple[float, float] = (0.08, 1.0),
                 crop_ratio: Tuple[float, float] = (3. / 4., 4. / 3.),
                 max_shift: int = 32,
                 flip_prob: float = 0.5,
                 view_pipelines: Optional[
                     Sequence[Sequence[TransformConfig]]] = None,
                 backend: str = 'pillow') -> None:
        super().__init__()
        name = type(self).__name__
        if mode not in self.MODES:
            raise ValueError(
                f'{name}.mode must be one of {self.MODES}, got {mode!r}')
        if not _is_positive_int(crop_size):
            raise ValueError(
                f'{name}.crop_size must be a positive int, got {crop_size!r}')
        if not (isinstance(max_shift, numbers.Integral)
                and not isinstance(max_shift, bool) and max_shift >= 0):
            raise ValueError(f'{name}.max_shift must be an int >= 0, got '
                             f'{max_shift!r}')
        if not _is_range(crop_scale, 0., 1.):
            raise ValueError(
                f'{name}.crop_scale must be a pair (min, max) with '
                f'0 < min <= max <= 1, got {crop_scale!r}')
        if not _is_range(crop_ratio, 0., float('inf')):
            raise ValueError(
                f'{name}.crop_ratio must be a pair (min, max) with '
                f'0 < min <= max, got {crop_ratio!r}')
        if not (isinstance(flip_prob, numbers.Real)
                and not isinstance(flip_prob, bool)
                and 0. <= flip_prob <= 1.):
            raise ValueError(f'{name}.flip_prob must be a float in [0, 1], '
                             f'got {flip_prob!r}')
        if backend not in self.BACKENDS:
            raise ValueError(f'{name}.backend must be one of '
                             f'{self.BACKENDS}, got {backend!r}')
        if view_pipelines is None:
            view_pipelines = default_view_pipelines(mode)
        elif not (isinstance(view_pipelines, Sequence)
                  and not isinstance(view_pipelines, str)
                  and len(view_pipelines) == 2 and all(
                      isinstance(p, Sequence) and not isinstance(p, str)
                      for p in view_pipelines)):
            raise ValueError(
                f'{name}.view_pipelines must be None or a list of 2 '
                f'pipelines (lists of transform configs), got '
                f'{view_pipelines!r}')

        self.mode = mode
        self.crop_size = int(crop_size)
        self.max_shift = int(max_shift)
        # 'medium' crops a larger square, from which the two views are cut.
        shared_crop_size = (
            self.crop_size + self.max_shift if mode == 'medium' else
            self.crop_size)
        self.random_resized_crop = RandomResizedCrop(
            scale=shared_crop_size,
            crop_ratio_range=tuple(crop_scale),
            aspect_ratio_range=tuple(crop_ratio),
            backend=backend)
        self.random_flip = RandomFlip(
            prob=float(flip_prob), direction='horizontal')
        self.view_pipelines = [
            Compose([
                TRANSFORMS.build(t) if isinstance(t, dict) else t
                for t in pipeline
            ]) for pipeline in view_pipelines
        ]

    def _crop_and_flip(self, results: Dict) -> Dict:
        """A random resized crop, then a random horizontal flip, of a copy
        of ``results``."""
        results = copy.deepcopy(results)
        results = self.random_resized_crop(results)
        return self.random_flip(results)

    @cache_randomness
    def _sample_diagonal_offsets(self) -> Tuple[int, int]:
        """Offsets along the diagonal of the two ``'medium'`` crops.

        Returns:
            tuple[int, int]: ``(offset_1, offset_2)``: view ``i``'s crop has
            its upper-left corner at ``(offset_i, offset_i)``.
            ``|offset_1 - offset_2| = d ~ U{0, ..., max_shift}``; the smaller
            offset ``s ~ U{0, ..., max_shift - d}``.
        """
        distance = np.random.randint(0, self.max_shift + 1)
        upper_left = np.random.randint(0, self.max_shift - distance + 1)
        if np.random.rand() < 0.5:
            return upper_left, upper_left + distance
        return upper_left + distance, upper_left

    def _crop_views(self, results: Dict) -> List[Dict]:
        """The two geometric views (crop + flip) of ``results``, before
        their view pipelines."""
        if self.mode == 'strong':
            return [self._crop_and_flip(results) for _ in range(2)]
        shared = self._crop_and_flip(results)
        if self.mode == 'light':
            return [shared, copy.deepcopy(shared)]
        views = []
        for offset in self._sample_diagonal_offsets():
            view = copy.deepcopy(shared)
            view['img'] = np.ascontiguousarray(
                shared['img'][offset:offset + self.crop_size,
                              offset:offset + self.crop_size])
            views.append(view)
        return views

    def transform(self, results: Dict) -> Optional[Dict]:
        """Replace ``results['img']`` by the list of the two views.

        Args:
            results (dict): Result dict with ``img``, an (H, W, C) uint8
                array.

        Returns:
            dict | None: ``results`` with ``img`` a list of two
            ``(crop_size, crop_size, C)`` arrays and ``img_shape``
            ``(crop_size, crop_size)``; None where a view pipeline dropped
            the sample.
        """
        views = []
        for view, pipeline in zip(self._crop_views(results),
                                  self.view_pipelines):
            view = pipeline(view)
            if view is None:
                return None
            views.append(view['img'])
        results['img'] = views
        results['img_shape'] = (self.crop_size, self.crop_size)
        return results

    def __repr__(self) -> str:
        repr_str = (f'{type(self).__name__}(mode={self.mode!r}, '
                    f'crop_size={self.crop_size}, '
                    f'max_shift={self.max_shift}, '
                    f'random_resized_crop={self.random_resized_crop}, '
                    f'random_flip={self.random_flip}')
        for index, pipeline in enumerate(self.view_pipelines, 1):
            repr_str += f',\nview_pipeline_{index}={pipeline}'
        return repr_str + ')'
