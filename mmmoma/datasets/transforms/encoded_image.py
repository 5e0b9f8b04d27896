"""Read an image file's bytes without decoding them (the GPU data path)."""
from typing import Dict, Optional

import mmengine.fileio as fileio
import torch
from mmcv.transforms import BaseTransform
from mmpretrain.registry import TRANSFORMS


@TRANSFORMS.register_module()
class LoadEncodedImage(BaseTransform):
    """The encoded file (JPEG) as a 1-D uint8 tensor in ``results['img']``.

    The GPU data path's replacement of ``LoadImageFromFile``: the dataloader
    workers only read files, and
    :class:`~mmmoma.models.data_preprocessors.GPUAugmentDataPreprocessor`
    decodes and augments the batch on the device. ``PackInputs`` passes the
    tensor through as ``inputs``; batches must be collated with
    ``pseudo_collate`` (the byte counts differ).

    **Required Keys:** img_path

    **Added Keys:** img (a (num_bytes,) uint8 tensor)

    Args:
        backend_args (dict, optional): Arguments of the file backend
            (``mmengine.fileio.get``), as ``LoadImageFromFile`` takes them.
            Defaults to None.
    """

    def __init__(self, backend_args: Optional[dict] = None) -> None:
        super().__init__()
        self.backend_args = None if backend_args is None else dict(
            backend_args)

    def transform(self, results: Dict) -> Dict:
        """Read ``results['img_path']``.

        Raises:
            ValueError: If the file is empty.
        """
        path = results['img_path']
        data = fileio.get(path, backend_args=self.backend_args)
        if not data:
            raise ValueError(f'{type(self).__name__}: {path} is empty')
        results['img'] = torch.frombuffer(bytearray(data), dtype=torch.uint8)
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(backend_args={self.backend_args})'
