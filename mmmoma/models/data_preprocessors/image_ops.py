"""Batched image operations with per-sample parameters, on any device.

Every function takes float images in ``[0, 255]``, RGB, shaped (B, 3, H, W),
and per-sample parameters as (B,) tensors on the images' device, and returns
images of the same kind. No function reads a value back to the host, so on
CUDA they queue kernels without synchronising. A sample whose parameter is
the operation's identity (factor 1, hue shift 0, sigma 0) is returned
unchanged. (The preprocessor runs an operation only on the samples that
draw it, see :func:`~.gpu_augment.apply_to_samples`.)

The photometric operations follow PIL's ``ImageEnhance`` (what mmcv's
``adjust_*`` functions call with ``backend='pillow'``): a blend with black
(brightness), with the mean grey level (contrast) or with the grey image
(saturation), clamped to ``[0, 255]`` after each operation, as PIL clamps to
uint8 (but without PIL's rounding to integers).
"""
from typing import List, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

#: ITU-R 601-2 luma weights of PIL's ``convert('L')``, RGB order.
LUMA_WEIGHTS = (0.299, 0.587, 0.114)


def _per_sample(values: Tensor) -> Tensor:
    """(B,) → (B, 1, 1, 1), to broadcast over (B, C, H, W)."""
    return values.reshape(-1, 1, 1, 1)


def gray(images: Tensor,
         weights: Sequence[float] = LUMA_WEIGHTS) -> Tensor:
    """Weighted channel sum: (B, 3, H, W) → (B, 1, H, W)."""
    w = torch.tensor(weights, dtype=images.dtype, device=images.device)
    return (images * w.reshape(1, 3, 1, 1)).sum(1, keepdim=True)


def blend(images: Tensor, other: Tensor, factor: Tensor) -> Tensor:
    """``factor · images + (1 − factor) · other``, clamped to [0, 255].

    Args:
        images: (B, 3, H, W).
        other: Broadcastable to ``images`` ((B, 1, H, W) or (B, 1, 1, 1)).
        factor: (B,) blend factors; 1 returns ``images``.
    """
    factor = _per_sample(factor)
    return (factor * images + (1 - factor) * other).clamp(0, 255)


def adjust_brightness(images: Tensor, factor: Tensor) -> Tensor:
    """PIL ``ImageEnhance.Brightness``: blend with black. factor: (B,)."""
    return blend(images, torch.zeros_like(images[:, :1]), factor)


def adjust_contrast(images: Tensor, factor: Tensor) -> Tensor:
    """PIL ``ImageEnhance.Contrast``: blend with the image's mean grey
    level (a constant image). factor: (B,)."""
    mean = gray(images).mean(dim=(1, 2, 3), keepdim=True)
    return blend(images, mean, factor)


def adjust_saturation(images: Tensor, factor: Tensor) -> Tensor:
    """PIL ``ImageEnhance.Color``: blend with the grey image. factor: (B,)."""
    return blend(images, gray(images), factor)


def rgb_to_hsv(images: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
    """RGB in [0, 1], (B, 3, H, W) → hue (turns, [0, 1)), saturation and
    value, each (B, 1, H, W)."""
    r, g, b = images.unbind(1)
    maxc, _ = images.max(1)
    minc, _ = images.min(1)
    delta = maxc - minc
    safe_delta = torch.where(delta > 0, delta, torch.ones_like(delta))
    hue = torch.where(
        maxc == r, (g - b) / safe_delta,
        torch.where(maxc == g, (b - r) / safe_delta + 2,
                    (r - g) / safe_delta + 4))
    hue = torch.where(delta > 0, torch.remainder(hue / 6, 1.0),
                      torch.zeros_like(hue))
    saturation = torch.where(maxc > 0, delta / torch.where(
        maxc > 0, maxc, torch.ones_like(maxc)), torch.zeros_like(maxc))
    return hue[:, None], saturation[:, None], maxc[:, None]


def hsv_to_rgb(hue: Tensor, saturation: Tensor, value: Tensor) -> Tensor:
    """Inverse of :func:`rgb_to_hsv`: three (B, 1, H, W) → (B, 3, H, W).

    Channel ``c`` is ``v − v·s·clamp(min(k, 4 − k), 0, 1)`` with
    ``k = (n_c + 6·h) mod 6``, ``n = (5, 3, 1)`` for (R, G, B).
    """
    n = torch.tensor([5., 3., 1.], dtype=hue.dtype,
                     device=hue.device).view(1, 3, 1, 1)
    k = torch.remainder(n + 6 * hue, 6)
    ramp = torch.minimum(k, 4 - k).clamp_(0, 1)
    return value - value * saturation * ramp


def adjust_hue(images: Tensor, shift: Tensor) -> Tensor:
    """Rotate the HSV hue by ``shift`` turns (mmcv's ``adjust_hue``, which
    adds ``hue_factor · 255`` to PIL's 8-bit hue). shift: (B,), 0 keeps the
    sample unchanged."""
    hue, saturation, value = rgb_to_hsv(images / 255)
    hue = torch.remainder(hue + _per_sample(shift), 1.0)
    shifted = hsv_to_rgb(hue, saturation, value) * 255
    return torch.where(_per_sample(shift) != 0, shifted, images)


def to_grayscale(images: Tensor, weights: Sequence[float]) -> Tensor:
    """mmcv's ``RandomGrayscale(keep_channels=True)``: the weighted channel
    sum in all three channels."""
    return gray(images, weights).expand_as(images).contiguous()


def gaussian_kernels(sigma: Tensor, kernel_size: int) -> Tensor:
    """Normalised 1-D Gaussian kernels: sigma (B,) → (B, kernel_size).

    A sigma of 0 gives the identity kernel (a 1 at the centre).
    """
    half = kernel_size // 2
    taps = torch.arange(-half, half + 1, dtype=sigma.dtype,
                        device=sigma.device)
    sigma = sigma.clamp_min(1e-3)[:, None]  # exp(-1/2e-6) = 0: identity
    kernels = torch.exp(-taps[None]**2 / (2 * sigma**2))
    return kernels / kernels.sum(1, keepdim=True)


def gaussian_blur(images: Tensor, sigma: Tensor, kernel_size: int) -> Tensor:
    """Separable Gaussian blur with a sigma per sample (PIL's
    ``GaussianBlur(radius)``: the radius is the standard deviation), edges
    replicated as PIL's box blurs do.

    One grouped convolution per direction over all B·3 channels.

    Args:
        images: (B, 3, H, W).
        sigma: (B,) standard deviations in pixels; 0 leaves a sample as it
            is.
        kernel_size: Odd number of taps (the same for the batch), e.g.
            ``2 · ceil(3 · max sigma) + 1``.
    """
    batch, channels, height, width = images.shape
    half = kernel_size // 2
    kernels = gaussian_kernels(sigma.to(images.dtype), kernel_size)
    kernels = kernels.repeat_interleave(channels, 0)  # (B·3, K)
    x = images.reshape(1, batch * channels, height, width)
    x = F.pad(x, (0, 0, half, half), mode='replicate')
    x = F.conv2d(x, kernels[:, None, :, None], groups=batch * channels)
    x = F.pad(x, (half, half, 0, 0), mode='replicate')
    x = F.conv2d(x, kernels[:, None, None, :], groups=batch * channels)
    return x.reshape(batch, channels, height, width)


def solarize(images: Tensor, threshold: float) -> Tensor:
    """mmcv's ``solarize``: values ``>= threshold`` become ``255 − value``."""
    return torch.where(images < threshold, images, 255 - images)


def horizontal_flip(images: Tensor, flip: Tensor) -> Tensor:
    """Mirror the samples where ``flip`` (B,) is True."""
    return torch.where(_per_sample(flip), images.flip(-1), images)


def resized_crops(images: Sequence[Tensor], boxes: List[List[int]],
                  size: Tuple[int, int], interpolation: str,
                  antialias: bool) -> Tensor:
    """Crop each image to its box and resize it to ``size``.

    The only per-image loop of the data path: the decoded images have
    different sizes. The boxes are host integers, so slicing queues no
    synchronisation.

    Args:
        images: B tensors (3, H_i, W_i), any dtype.
        boxes: B boxes ``[top, left, height, width]`` (host ints).
        size: Output (height, width).
        interpolation: ``'bicubic'``, ``'bilinear'`` or ``'nearest'``.
        antialias: Low-pass filter when downscaling (as PIL's resize does).

    Returns:
        (B, 3, *size) float images in [0, 255].
    """
    kwargs = dict(mode=interpolation)
    if interpolation != 'nearest':
        kwargs.update(align_corners=False, antialias=antialias)
    crops = []
    for image, (top, left, height, width) in zip(images, boxes):
        crop = image[None, :, top:top + height, left:left + width].float()
        crops.append(F.interpolate(crop, size=size, **kwargs))
    return torch.cat(crops).clamp_(0, 255)


def diagonal_windows(images: Tensor, offsets: Tensor, size: int) -> Tensor:
    """Square windows whose upper-left corner is ``(offset, offset)``, one
    offset per sample (M-MoCo's medium views).

    Args:
        images: (B, C, H, W).
        offsets: (B,) int64, ``0 <= offset <= min(H, W) - size``.
        size: Side of the windows.

    Returns:
        (B, C, size, size).
    """
    steps = torch.arange(size, device=images.device)
    rows = (offsets[:, None] + steps)[:, None, :, None]  # (B, 1, S, 1)
    cols = (offsets[:, None] + steps)[:, None, None, :]  # (B, 1, 1, S)
    batch, channels = images.shape[:2]
    rows = rows.expand(batch, channels, size, images.shape[-1])
    windows = images.gather(2, rows)  # (B, C, S, W)
    return windows.gather(3, cols.expand(batch, channels, size, size))
