"""Weight-initialisation schemes of the official codes that mmengine's
``init_cfg`` cannot express (SdAE's student and EMA teacher)."""
import torch
from torch import nn


def loads_pretrained(init_cfg) -> bool:
    """Whether an ``init_cfg`` loads weights (``Pretrained`` and the like)."""
    cfgs = init_cfg if isinstance(init_cfg, (list, tuple)) else [init_cfg]
    return any(isinstance(cfg, dict) and 'Pretrained' in str(cfg.get('type'))
               for cfg in cfgs)


@torch.no_grad()
def init_vit_as_timm(vit: nn.Module) -> None:
    """A timm ViT's init (the official SdAE teacher): Linear
    trunc_normal(std 0.02) with zero bias, LayerNorm 1 / 0, a *random*
    trunc_normal(0.02) ``pos_embed`` and CLS token (no sin-cos; EMA then
    pulls them toward the student's), the patch-embedding conv with
    PyTorch's default.

    Args:
        vit (nn.Module): an mmpretrain ``VisionTransformer``.
    """
    for module in vit.modules():
        if isinstance(module, nn.Linear):
            nn.init.trunc_normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Conv2d):
            module.reset_parameters()
    nn.init.trunc_normal_(vit.pos_embed, std=0.02)
    if getattr(vit, 'cls_token', None) is not None:
        nn.init.trunc_normal_(vit.cls_token, std=0.02)


@torch.no_grad()
def init_vit_as_mae(vit: nn.Module) -> None:
    """MAE's encoder init beyond ``init_cfg``: patch-embedding weight
    xavier_uniform on its flattened (D, 3·p·p) view, CLS token normal (std
    0.02) (MAE ``initialize_weights``; the decoder's mask token is drawn by
    ``MAEPretrainDecoder``).

    Args:
        vit (nn.Module): an mmpretrain ``VisionTransformer``.
    """
    weight = vit.patch_embed.projection.weight
    nn.init.xavier_uniform_(weight.view(weight.shape[0], -1))
    if getattr(vit, 'cls_token', None) is not None:
        nn.init.normal_(vit.cls_token, std=0.02)
