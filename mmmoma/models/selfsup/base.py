"""What the masked pre-training algorithms share: a student backbone that
sees the plans of a mask generator (``mmmoma.models.masking``)."""
from typing import List, Optional, Union

import torch
from mmpretrain.models.selfsup import BaseSelfSupervisor
from torch import Tensor

from ..masking import MaskPlan, backbone_grid


class MaskedPretrainer(BaseSelfSupervisor):
    """mmpretrain's ``BaseSelfSupervisor`` with a mask generator.

    Subclasses set ``self.mask_generator`` (see
    :func:`~mmmoma.models.masking.build_mask_generator`) and implement
    ``encoder_inputs(views, generator)``, the masking protocol the
    visualiser reads.

    Args:
        backbone (dict): the student backbone config.
        data_preprocessor (dict, optional): e.g. ``SelfSupDataPreprocessor``.
        init_cfg (dict | list[dict], optional): init config.
        **kwargs: further ``BaseSelfSupervisor`` arguments (``neck``).
    """

    def __init__(self,
                 backbone: dict,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[Union[dict, List[dict]]] = None,
                 **kwargs) -> None:
        super().__init__(backbone=backbone,
                         data_preprocessor=data_preprocessor,
                         init_cfg=init_cfg, **kwargs)

    def plan(self, images: Tensor,
             generator: Optional[torch.Generator] = None,
             mask_generator=None) -> MaskPlan:
        """Draw one batch's plan on the backbone's patch grid.

        Args:
            images (Tensor): (B, 3, H, W) one view.
            generator (torch.Generator, optional): random generator.
            mask_generator (optional): another of the model's generators
                (default: ``self.mask_generator``).

        Returns:
            MaskPlan: the plan (see :class:`~mmmoma.models.masking.MaskPlan`).
        """
        mask_generator = mask_generator or self.mask_generator
        return mask_generator(images.shape[0],
                              backbone_grid(self.backbone, images),
                              images.device, generator)

    def extract_feat(self, inputs: Tensor) -> tuple:
        """Student features of unmasked images (kNN, fine-tuning checks)."""
        return self.backbone(inputs)
