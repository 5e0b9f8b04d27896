"""The per-sample random operations of the GPU data path: crop specs, view
specs and the augmentations, each drawing its parameters for a whole batch
on the host (see :mod:`.gpu_augment` for the randomness contract) and
applying them with the batched kernels of :mod:`.image_ops`."""
import math
from typing import Any, Callable, Dict, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from . import image_ops

Range = Tuple[float, float]
Params = Dict[str, Tensor]


def _uniform(low: Union[float, Tensor], high: Union[float, Tensor],
             shape: Sequence[int], generator: torch.Generator) -> Tensor:
    """Uniform float64 draws in [low, high) on the host."""
    u = torch.rand(shape, generator=generator, dtype=torch.float64)
    return low + (high - low) * u


def _bernoulli(prob: float, batch: int,
               generator: torch.Generator) -> Tensor:
    """(B,) bool, True with probability ``prob``."""
    return torch.rand(batch, generator=generator,
                      dtype=torch.float64) < prob


def _range(value: Any, field: str) -> Range:
    """A validated ``(min, max)`` pair."""
    if not (isinstance(value, Sequence) and len(value) == 2
            and float(value[0]) <= float(value[1])):
        raise ValueError(f'{field} must be a pair (min, max) with min <= '
                         f'max, got {value!r}')
    return float(value[0]), float(value[1])


def _prob(value: Any, field: str) -> float:
    if not 0. <= float(value) <= 1.:
        raise ValueError(f'{field} must be in [0, 1], got {value!r}')
    return float(value)


def apply_to_samples(images: Tensor, selected: Tensor, function: Callable,
                     *per_sample: Tensor) -> Tensor:
    """``function`` on the selected samples only, written back in place of
    them.

    ``selected`` and ``per_sample`` are host tensors, so which samples and
    how many are known on the host: the gather / scatter indices are copied
    to the device and nothing is read back. An operation drawn for 10 % of
    a batch thus costs 10 % of the batch.

    Args:
        images: (B, C, H, W) on the device.
        selected: (B,) host bool.
        function: ``function(images_subset, *per_sample_subset) -> images``.
        *per_sample: (B, ...) host tensors, subset and copied along.

    Returns:
        (B, C, H, W).
    """
    if not bool(selected.any()):
        return images
    device = images.device
    if bool(selected.all()):
        return function(images, *[p.to(device, non_blocking=True)
                                  for p in per_sample])
    index = selected.nonzero()[:, 0]
    device_index = index.to(device, non_blocking=True)
    subset = function(
        images.index_select(0, device_index),
        *[p[index].to(device, non_blocking=True) for p in per_sample])
    return images.index_copy(0, device_index, subset)


def sample_crop_boxes(heights: Tensor, widths: Tensor, scale: Range,
                      ratio: Range, max_attempts: int,
                      generator: torch.Generator) -> Tensor:
    """mmpretrain's ``RandomResizedCrop.rand_crop_params``, for a batch.

    Per image, up to ``max_attempts`` draws of an area fraction
    ``U(scale)`` and a log aspect ratio ``U(log ratio)`` (width / height);
    the first whose rounded box fits is kept, at a uniform integer offset.
    Where none fits: the centred crop of the whole image, narrowed to the
    ratio range. All attempts are drawn at once (B, max_attempts).

    Args:
        heights: (B,) image heights (int64, host).
        widths: (B,) image widths (int64, host).
        scale: Range of the crop area as a fraction of the image area.
        ratio: Range of the crop aspect ratio (width / height).
        max_attempts: Draws before the fallback.
        generator: Host generator.

    Returns:
        (B, 4) int64 boxes ``(top, left, height, width)``.
    """
    batch = heights.numel()
    h = heights.double()[:, None]
    w = widths.double()[:, None]
    shape = (batch, max_attempts)
    area = _uniform(scale[0], scale[1], shape, generator) * h * w
    aspect = torch.exp(
        _uniform(math.log(ratio[0]), math.log(ratio[1]), shape, generator))
    target_w = torch.round(torch.sqrt(area * aspect))
    target_h = torch.round(torch.sqrt(area / aspect))
    fits = (target_w > 0) & (target_w <= w) & (target_h > 0) & (target_h <= h)
    first = fits.to(torch.uint8).argmax(1, keepdim=True)  # first fitting
    found = fits.any(1)
    crop_h = target_h.gather(1, first)[:, 0]
    crop_w = target_w.gather(1, first)[:, 0]
    top = torch.floor(
        _uniform(0., 1., (batch, ), generator) * (h[:, 0] - crop_h + 1))
    left = torch.floor(
        _uniform(0., 1., (batch, ), generator) * (w[:, 0] - crop_w + 1))

    # Fallback: the whole image, narrowed to the nearest ratio in range.
    in_ratio = w[:, 0] / h[:, 0]
    fb_h = torch.where(in_ratio < ratio[0], torch.round(w[:, 0] / ratio[0]),
                       h[:, 0])
    fb_w = torch.where(in_ratio > ratio[1], torch.round(h[:, 0] * ratio[1]),
                       w[:, 0])
    fb_top = torch.div(h[:, 0] - fb_h, 2, rounding_mode='floor')
    fb_left = torch.div(w[:, 0] - fb_w, 2, rounding_mode='floor')
    boxes = torch.where(found[:, None],
                        torch.stack([top, left, crop_h, crop_w], 1),
                        torch.stack([fb_top, fb_left, fb_h, fb_w], 1))
    return boxes.long()


class CropSpec:
    """A random resized crop and flip shared by the views that name it.

    Args:
        size (int | tuple[int, int]): Output (height, width).
        scale (tuple[float, float]): Area fraction range. Defaults to
            (0.08, 1.0).
        ratio (tuple[float, float]): Aspect ratio (width / height) range.
            Defaults to (3/4, 4/3).
        max_attempts (int): Draws before the centred fallback.
            Defaults to 10.
        flip_prob (float): Probability of a horizontal flip. Defaults to 0.
        interpolation (str): ``'bicubic'``, ``'bilinear'`` or
            ``'nearest'``. Defaults to ``'bilinear'``.
        antialias (bool): Low-pass filter when downscaling (PIL's resize
            does; cv2's does not). Defaults to True.
        windows (dict, optional): ``dict(size=S, max_shift=M)``: the crop
            (of side ``S + M``) is cut into two ``S × S`` windows on its
            diagonal, ``d ~ U{0..M}`` pixels apart, the upper one at
            ``s ~ U{0..M−d}``, a fair coin picks which window is first
            (``ContrastiveViews(mode='medium')``). Defaults to None.
    """

    INTERPOLATIONS = ('bicubic', 'bilinear', 'nearest')

    def __init__(self,
                 size: Union[int, Sequence[int]],
                 scale: Range = (0.08, 1.0),
                 ratio: Range = (3. / 4., 4. / 3.),
                 max_attempts: int = 10,
                 flip_prob: float = 0.,
                 interpolation: str = 'bilinear',
                 antialias: bool = True,
                 windows: Optional[Dict[str, int]] = None) -> None:
        self.size = (int(size), int(size)) if isinstance(
            size, (int, float)) else (int(size[0]), int(size[1]))
        self.scale = _range(scale, 'crop scale')
        self.ratio = _range(ratio, 'crop ratio')
        self.max_attempts = int(max_attempts)
        self.flip_prob = _prob(flip_prob, 'crop flip_prob')
        if interpolation not in self.INTERPOLATIONS:
            raise ValueError(f'crop interpolation must be one of '
                             f'{self.INTERPOLATIONS}, got {interpolation!r}')
        self.interpolation = interpolation
        self.antialias = bool(antialias)
        self.windows = None
        if windows is not None:
            self.windows = (int(windows['size']), int(windows['max_shift']))
            if (sum(self.windows) != self.size[0]
                    or self.size[0] != self.size[1]):
                raise ValueError(
                    f'crop windows: a square crop of side size + max_shift '
                    f'is cut, got crop size {self.size} and windows '
                    f'{windows!r}')

    def sample(self, heights: Tensor, widths: Tensor,
               generator: torch.Generator) -> Params:
        """Boxes (B, 4), flips (B,) and, with windows, offsets (B, 2)."""
        batch = heights.numel()
        params = dict(
            boxes=sample_crop_boxes(heights, widths, self.scale, self.ratio,
                                    self.max_attempts, generator),
            flip=_bernoulli(self.flip_prob, batch, generator))
        if self.windows is not None:
            max_shift = self.windows[1]
            u = _uniform(0., 1., (batch, 3), generator)
            distance = torch.floor(u[:, 0] * (max_shift + 1))
            upper = torch.floor(u[:, 1] * (max_shift - distance + 1))
            pair = torch.stack([upper, upper + distance], 1)
            swap = u[:, 2] < 0.5
            params['offsets'] = torch.where(swap[:, None], pair.flip(1),
                                            pair).long()
        return params

    def apply(self, images: Sequence[Tensor], params: Params) -> Tensor:
        """B decoded images → the flipped crops, (B, 3, *size) float.

        ``params`` are the host tensors of :meth:`sample`: the boxes are
        read on the host, the flips copied to the images' device.
        """
        crops = image_ops.resized_crops(images, params['boxes'].tolist(),
                                        self.size, self.interpolation,
                                        self.antialias)
        flip = params['flip'].to(crops.device, non_blocking=True)
        return image_ops.horizontal_flip(crops, flip)

    def window(self, crops: Tensor, params: Params, index: int) -> Tensor:
        """Window ``index`` (0 or 1) of the crops, (B, 3, S, S)."""
        offsets = params['offsets'][:, index].to(crops.device,
                                                 non_blocking=True)
        return image_ops.diagonal_windows(crops, offsets, self.windows[0])


class ColorJitter:
    """mmpretrain's ``ColorJitter`` (in ``RandomApply(prob)``): per sample,
    brightness / contrast / saturation / hue factors drawn uniformly from
    their ranges and applied in a random order (a per-sample permutation,
    as mmpretrain draws one per image).

    Batched: four steps; at step k each operation runs on the samples
    whose k-th operation it is (:func:`apply_to_samples`), so every sample
    goes through each of its operations once.

    Args:
        brightness, contrast, saturation (tuple | None): Factor ranges;
            None disables.
        hue (tuple | None): Hue shift range in turns, within [-0.5, 0.5].
        prob (float): Probability of jittering a sample. Defaults to 1.
    """

    OPERATIONS = ('brightness', 'contrast', 'saturation', 'hue')
    IDENTITY = (1., 1., 1., 0.)

    def __init__(self,
                 brightness: Optional[Range] = None,
                 contrast: Optional[Range] = None,
                 saturation: Optional[Range] = None,
                 hue: Optional[Range] = None,
                 prob: float = 1.) -> None:
        self.ranges = [
            None if value is None else _range(value, f'ColorJitter {name}')
            for name, value in zip(self.OPERATIONS,
                                   (brightness, contrast, saturation, hue))
        ]
        self.prob = _prob(prob, 'ColorJitter prob')

    def sample(self, batch: int, generator: torch.Generator) -> Params:
        """``apply`` (B,) bool, ``factors`` (B, 4) (brightness, contrast,
        saturation, hue; the identity for a disabled one) and ``order``
        (B, 4): the operation index run at each step."""
        apply = _bernoulli(self.prob, batch, generator)
        order = torch.rand((batch, 4), generator=generator).argsort(1)
        factors = []
        for value_range, identity in zip(self.ranges, self.IDENTITY):
            factor = torch.full((batch, ), identity, dtype=torch.float64)
            if value_range is not None:
                factor = _uniform(*value_range, (batch, ), generator)
            factors.append(factor)
        return dict(
            apply=apply, factors=torch.stack(factors, 1).float(), order=order)

    def apply(self, images: Tensor, params: Params) -> Tensor:
        functions = (image_ops.adjust_brightness, image_ops.adjust_contrast,
                     image_ops.adjust_saturation, image_ops.adjust_hue)
        factors, order = params['factors'], params['order']
        for step in range(4):
            for op, function in enumerate(functions):
                if self.ranges[op] is None:
                    continue
                selected = params['apply'] & (order[:, step] == op)
                images = apply_to_samples(images, selected, function,
                                          factors[:, op])
        return images


class Grayscale:
    """mmcv's ``RandomGrayscale(keep_channels=True)``.

    Args:
        weights (tuple[float, float, float]): Channel weights in **RGB**
            order (normalised to sum 1). Defaults to PIL's luma.
        prob (float): Probability. Defaults to 0.2.
    """

    def __init__(self,
                 weights: Sequence[float] = image_ops.LUMA_WEIGHTS,
                 prob: float = 0.2) -> None:
        if len(weights) != 3 or sum(weights) <= 0:
            raise ValueError(f'Grayscale weights must be 3 numbers with a '
                             f'positive sum, got {weights!r}')
        self.weights = tuple(float(w) / sum(weights) for w in weights)
        self.prob = _prob(prob, 'Grayscale prob')

    def sample(self, batch: int, generator: torch.Generator) -> Params:
        return dict(apply=_bernoulli(self.prob, batch, generator))

    def apply(self, images: Tensor, params: Params) -> Tensor:
        return apply_to_samples(
            images, params['apply'],
            lambda x: image_ops.to_grayscale(x, self.weights))


class GaussianBlur:
    """mmpretrain's ``GaussianBlur``: sigma (PIL's radius) ``U(sigma)``.

    Args:
        sigma (tuple[float, float]): Standard deviation range in pixels.
        prob (float): Probability. Defaults to 0.5.
    """

    def __init__(self, sigma: Range = (0.1, 2.0), prob: float = 0.5) -> None:
        self.sigma = _range(sigma, 'GaussianBlur sigma')
        if self.sigma[0] < 0:
            raise ValueError(f'GaussianBlur sigma must be >= 0, got {sigma}')
        self.prob = _prob(prob, 'GaussianBlur prob')
        self.kernel_size = 2 * math.ceil(3 * self.sigma[1]) + 1

    def sample(self, batch: int, generator: torch.Generator) -> Params:
        apply = _bernoulli(self.prob, batch, generator)
        sigma = _uniform(*self.sigma, (batch, ), generator)
        return dict(apply=apply, sigma=sigma.float())

    def apply(self, images: Tensor, params: Params) -> Tensor:
        return apply_to_samples(
            images, params['apply'], lambda x, sigma: image_ops.gaussian_blur(
                x, sigma, self.kernel_size), params['sigma'])


class Solarize:
    """mmpretrain's ``Solarize(thr)``.

    Args:
        threshold (float): Values >= threshold are inverted.
            Defaults to 128.
        prob (float): Probability. Defaults to 0.5.
    """

    def __init__(self, threshold: float = 128., prob: float = 0.5) -> None:
        self.threshold = float(threshold)
        self.prob = _prob(prob, 'Solarize prob')

    def sample(self, batch: int, generator: torch.Generator) -> Params:
        return dict(apply=_bernoulli(self.prob, batch, generator))

    def apply(self, images: Tensor, params: Params) -> Tensor:
        return apply_to_samples(
            images, params['apply'],
            lambda x: image_ops.solarize(x, self.threshold))


#: The augmentation ``type`` names of a view spec.
AUGMENTATIONS = dict(
    ColorJitter=ColorJitter,
    Grayscale=Grayscale,
    GaussianBlur=GaussianBlur,
    Solarize=Solarize)


class ViewSpec:
    """One output view: a crop (or one of its windows), then augmentations.

    Args:
        crop (int): Index into the preprocessor's crops.
        window (int, optional): 0 or 1, for a crop with windows.
        augmentations (list[dict]): Ordered ``dict(type=..., **kwargs)``,
            ``type`` in :data:`AUGMENTATIONS`.
    """

    def __init__(self,
                 crop: int,
                 window: Optional[int] = None,
                 augmentations: Sequence[Dict[str, Any]] = ()) -> None:
        self.crop = int(crop)
        self.window = None if window is None else int(window)
        self.augmentations = []
        for index, cfg in enumerate(augmentations):
            cfg = dict(cfg)
            kind = cfg.pop('type', None)
            if kind not in AUGMENTATIONS:
                raise ValueError(
                    f'view augmentations[{index}].type must be one of '
                    f'{sorted(AUGMENTATIONS)}, got {kind!r}')
            self.augmentations.append(AUGMENTATIONS[kind](**cfg))
