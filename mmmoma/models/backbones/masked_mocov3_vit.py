"""MoCo v3's ViT (initialisation, fixed sin-cos position embedding, optional
frozen patch embedding) with ``MaskedViT``'s grouped forward (M-MoCo)."""
from mmpretrain.models.selfsup import MoCoV3ViT
from mmpretrain.registry import MODELS

from .masked_vit import MaskedViT


@MODELS.register_module()
class MaskedMoCoV3ViT(MaskedViT, MoCoV3ViT):
    """mmpretrain's ``MoCoV3ViT`` that can encode chunks of its patches.

    ``MoCoV3ViT`` supplies MoCo v3's weight initialisation (xavier-uniform
    linear layers, q / k / v initialised separately, uniform patch
    embedding), the fixed 2-D sin-cos position embedding, the ``mocov3-small``
    arch (12 heads) and ``stop_grad_conv1``: MoCo v3's *frozen patch
    embedding* trick (off by default in M-MoCo, on in MoCo v3's recipe;
    M-MoCo Table 1). ``MaskedViT`` supplies ``forward(x, token_ids,
    num_groups)``, which M-MoCo uses to encode the shuffled patch sequence in
    ``n`` chunks, each with its own CLS token. The state-dict keys are
    ``VisionTransformer``'s, so MoCo v3 / M-MoCo checkpoints load into
    either class.

    Args:
        All of ``MoCoV3ViT`` / ``VisionTransformer`` (``patch_size`` is
        required by ``MoCoV3ViT``). ``pos_embed_type`` is fixed to MoCo v3's
        non-trained sin-cos embedding.
    """

    def __init__(self, *args, **kwargs) -> None:
        if kwargs.get('pos_embed_type', 'sincos') != 'sincos':
            raise ValueError(
                "MaskedMoCoV3ViT.pos_embed_type must be 'sincos' (MoCo v3's "
                f"fixed embedding), got {kwargs['pos_embed_type']!r}")
        kwargs['pos_embed_type'] = 'sincos'
        if 'patch_size' not in kwargs:
            raise ValueError('MaskedMoCoV3ViT needs patch_size (e.g. 16)')
        super().__init__(*args, **kwargs)
