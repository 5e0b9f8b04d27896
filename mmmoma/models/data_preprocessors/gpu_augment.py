"""A data preprocessor that decodes JPEGs and builds the views on the device.

The CPU data path decodes, crops and colour-augments every sample in the
dataloader workers (mmcv / PIL, one image at a time). This preprocessor
receives the encoded bytes instead (see
:class:`~mmmoma.datasets.transforms.LoadEncodedImage`) and does the same on
the model's device: batched ``torchvision.io.decode_jpeg``, one resized crop
per image, then batched (B, 3, H, W) operations with per-sample parameters
(:mod:`.image_ops`).

The views are declared, not coded per method:

* ``crops``: random resized crops, each followed by a random horizontal
  flip; optionally cut into two diagonal windows (M-MoCo's medium mode);
* ``views``: each names its crop (and window) and its ordered
  augmentations.

MOMA = one crop, two views on it (view 0 plain, view 1 strong); M-MoCo
strong = two crops, one view each; M-MoCo light = one crop, two views;
SdAE / MimCo / MAE = one crop, one view. ``mmmoma.datasets.gpu_data_path``
writes these specs from a config's CPU pipeline.

Randomness: every random number is drawn on the host, from this module's
own CPU ``torch.Generator``, for the whole batch at once, after decoding
(the crop boxes need the image sizes, which are host metadata of the
decoded tensors) and before the first augmentation kernel is queued. The
parameters, and the indices of the samples each operation applies to
(:func:`apply_to_samples`), are then copied to the device. So nothing in the
augmentation reads a device value back (no ``.item()``, no data-dependent
shapes), and the same seed gives the same parameters on CPU and CUDA. The
generator is re-seeded for every batch from ``seed`` (default:
``torch.initial_seed()``, which MMEngine's ``randomness.seed`` sets), the
distributed rank (ranks draw different augmentations) and the training
iteration of MMEngine's message hub (plus a count of the batches seen at
that iteration, 0 in training), so a resumed run draws exactly the
augmentations the uninterrupted run would have, with no generator state to
checkpoint.

Not bit-identical to the CPU path: the views stay float from the resize
on (no rounding to uint8 between operations), hue is rotated in float HSV
rather than PIL's 8-bit HSV, and the blur is an exact separable Gaussian
(±3 sigma) where PIL approximates it with three box blurs.
"""
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
from mmengine.dist import get_rank
from mmengine.logging import MessageHub
from mmengine.model import BaseDataPreprocessor
from mmpretrain.registry import MODELS
from torch import Tensor

from .augmentations import (AUGMENTATIONS, ColorJitter, CropSpec, GaussianBlur,
                            Grayscale, Params, Solarize, ViewSpec,
                            apply_to_samples, sample_crop_boxes)

__all__ = [
    'AUGMENTATIONS', 'ColorJitter', 'CropSpec', 'GaussianBlur',
    'GPUAugmentDataPreprocessor', 'Grayscale', 'Solarize', 'ViewSpec',
    'apply_to_samples', 'sample_crop_boxes'
]


@MODELS.register_module()
class GPUAugmentDataPreprocessor(BaseDataPreprocessor):
    """Decode, crop, augment and normalise a batch on the model's device.

    Input (a ``pseudo_collate`` batch): ``inputs`` is a list of B 1-D uint8
    tensors of JPEG bytes (from ``LoadEncodedImage``), or of already decoded
    (3, H_i, W_i) uint8 images (RGB, or BGR with ``decoded_bgr=True``), or
    one (B, 3, H, W) uint8 tensor. ``data_samples`` are moved to the device
    and passed through.

    Output, as ``SelfSupDataPreprocessor`` gives for the CPU pipeline:
    ``{'inputs': views, 'data_samples': ...}``, ``views`` a list of
    (B, 3, H, W) float tensors normalised with ``mean`` / ``std`` (RGB), in
    the order of ``views``, or the one tensor where there is one view (as a
    pipeline without ``MultiView`` gives).

    Args:
        crops (list[dict]): :class:`CropSpec` keyword arguments.
        views (list[dict]): :class:`ViewSpec` keyword arguments.
        mean (sequence[float]): Per-channel mean, RGB, in [0, 255] units.
        std (sequence[float]): Per-channel std, RGB.
        seed (int, optional): Seed of the augmentation generator; None uses
            ``torch.initial_seed()`` at the first batch. The rank is added.
        decoded_bgr (bool): Already decoded inputs are BGR (mmcv's
            ``LoadImageFromFile``). Defaults to False.
        non_blocking (bool): Non-blocking copies to the device.
    """

    def __init__(self,
                 crops: Sequence[Dict[str, Any]],
                 views: Sequence[Dict[str, Any]],
                 mean: Sequence[float] = (123.675, 116.28, 103.53),
                 std: Sequence[float] = (58.395, 57.12, 57.375),
                 seed: Optional[int] = None,
                 decoded_bgr: bool = False,
                 non_blocking: Optional[bool] = False) -> None:
        super().__init__(non_blocking=non_blocking)
        if not crops or not views:
            raise ValueError('GPUAugmentDataPreprocessor needs at least one '
                             'crop and one view')
        self.crops = [CropSpec(**dict(crop)) for crop in crops]
        self.views = [ViewSpec(**dict(view)) for view in views]
        for index, view in enumerate(self.views):
            if not 0 <= view.crop < len(self.crops):
                raise ValueError(f'views[{index}].crop = {view.crop}: there '
                                 f'are {len(self.crops)} crops')
            has_windows = self.crops[view.crop].windows is not None
            if has_windows != (view.window in (0, 1)):
                raise ValueError(
                    f'views[{index}].window must be 0 or 1 for a crop with '
                    f'windows and None otherwise, got {view.window!r}')
        self.register_buffer('mean',
                             torch.tensor(mean).float().view(-1, 1, 1), False)
        self.register_buffer('std',
                             torch.tensor(std).float().view(-1, 1, 1), False)
        self.seed = seed
        self.decoded_bgr = decoded_bgr
        # (iteration, batches seen in it): one batch per training iteration
        # in a Runner; outside one, the batches of a never-changing iteration
        self._position = (None, 0)

    def _host_generator(self) -> torch.Generator:
        """A CPU generator seeded from (seed, rank, iteration)."""
        base = torch.initial_seed() if self.seed is None else self.seed
        iteration = MessageHub.get_current_instance().get_info('iter')
        last, count = self._position
        count = count + 1 if iteration == last else 0
        self._position = (iteration, count)
        # ints hash deterministically (no PYTHONHASHSEED salt)
        seed = hash((int(base), get_rank(), -1 if iteration is None else
                     int(iteration), count)) % 2**63
        return torch.Generator().manual_seed(seed)

    def decode(self, inputs: Union[Tensor, Sequence[Tensor]]) -> List[Tensor]:
        """The batch as B RGB uint8 images (3, H_i, W_i) on the device.

        Encoded inputs (1-D uint8) that start with the JPEG marker go
        through one batched ``decode_jpeg`` call on the device; the others
        (ImageNet's train set holds a PNG and CMYK JPEGs among its files),
        and a batch whose batched decode fails, are decoded on the host by
        ``decode_image`` and copied over.
        """
        if isinstance(inputs, Tensor) and inputs.dim() == 4:
            inputs = list(inputs.unbind(0))
        if all(x.dim() == 1 for x in inputs):
            return self._decode_bytes([x.cpu() for x in inputs])
        if not all(x.dim() == 3 and x.shape[0] == 3 for x in inputs):
            raise ValueError(
                'GPUAugmentDataPreprocessor: inputs must be 1-D uint8 JPEG '
                'byte tensors or (3, H, W) uint8 images, got shapes '
                f'{[tuple(x.shape) for x in inputs]}')
        images = [
            x.to(self.device, non_blocking=self._non_blocking)
            for x in inputs
        ]
        return [x.flip(0) for x in images] if self.decoded_bgr else images

    def _decode_bytes(self, encoded: List[Tensor]) -> List[Tensor]:
        from torchvision.io import ImageReadMode, decode_image, decode_jpeg

        def on_host(data: Tensor) -> Tensor:
            return decode_image(data, mode=ImageReadMode.RGB).to(
                self.device, non_blocking=self._non_blocking)

        jpeg = [
            i for i, x in enumerate(encoded)
            if x.numel() > 2 and x[0] == 0xFF and x[1] == 0xD8
        ]
        images: List[Optional[Tensor]] = [None] * len(encoded)
        if jpeg:
            try:
                decoded = decode_jpeg([encoded[i] for i in jpeg],
                                      mode=ImageReadMode.RGB,
                                      device=self.device)
            except RuntimeError:  # e.g. a CMYK JPEG for nvjpeg
                decoded = [on_host(encoded[i]) for i in jpeg]
            for i, image in zip(jpeg, decoded):
                images[i] = image
        return [
            on_host(data) if image is None else image
            for data, image in zip(encoded, images)
        ]

    def sample_params(self, sizes: Sequence[Tuple[int, int]]
                      ) -> Tuple[List[Params], List[List[Params]]]:
        """Every random parameter of the batch, drawn on the host.

        Args:
            sizes: The B image sizes (H_i, W_i).

        Returns:
            ``(crop_params, view_params)``: one dict of host tensors per
            crop, and per view one per augmentation.
        """
        generator = self._host_generator()
        sizes = torch.tensor(sizes, dtype=torch.long).reshape(-1, 2)
        batch = sizes.shape[0]
        crop_params = [
            crop.sample(sizes[:, 0], sizes[:, 1], generator)
            for crop in self.crops
        ]
        view_params = [[aug.sample(batch, generator)
                        for aug in view.augmentations]
                       for view in self.views]
        return crop_params, view_params

    def augment(self, images: Sequence[Tensor], crop_params: List[Params],
                view_params: List[List[Params]]) -> List[Tensor]:
        """The views, (B, 3, H, W) float in [0, 255], before normalising."""
        crops = [
            crop.apply(images, params)
            for crop, params in zip(self.crops, crop_params)
        ]
        views = []
        for view, params in zip(self.views, view_params):
            x = crops[view.crop]
            if view.window is not None:
                x = self.crops[view.crop].window(x, crop_params[view.crop],
                                                 view.window)
            for aug, aug_params in zip(view.augmentations, params):
                x = aug.apply(x, aug_params)
            views.append(x)
        return views

    def forward(self, data: dict, training: bool = False) -> dict:
        """Decode, augment (the same in training and testing: these are
        pre-training views) and normalise.

        Args:
            data (dict): ``inputs`` (see the class docstring) and
                optionally ``data_samples``.
            training (bool): Unused.

        Returns:
            dict: ``inputs`` (a (B, 3, H, W) tensor or a list of them) and
            ``data_samples``.
        """
        images = self.decode(data['inputs'])
        crop_params, view_params = self.sample_params(
            [tuple(image.shape[-2:]) for image in images])
        views = [(view - self.mean) / self.std
                 for view in self.augment(images, crop_params, view_params)]
        data_samples = self.cast_data(data.get('data_samples', None))
        return {
            'inputs': views[0] if len(views) == 1 else views,
            'data_samples': data_samples
        }
