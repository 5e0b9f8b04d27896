# MimCo (paper §3) with a ViT-B/16 student and the frozen MoCo v3 ViT-B/16
# teacher (§3.3). The student is SimMIM-style: masked patches are replaced by
# a learnable mask token and the full sequence is encoded. Masking, heads,
# queues and losses: mimco_heads.py.
# Teacher weights: the official release, converted once with
#   python tools/model_converters/mocov3_to_mmpretrain.py \
#       vit-b-300ep.pth.tar checkpoints/mocov3_vit-base-300ep_mmpretrain.pth
# (the .pth.tar also loads directly: point `checkpoint` at it).
_base_ = ['./mimco_heads.py']
model = dict(
    backbone=dict(
        type='SimMIMViT',
        arch='b',
        img_size=224,
        patch_size=16,
        out_type='featmap',  # (B, C, 14, 14) patch feature map
        drop_path_rate=0.0),  # the paper does not say
    teacher=dict(
        dtype='bfloat16',  # frozen: bf16 weights, no per-step casts
        network=dict(
            type='MaskedViT',
            arch='b',
            img_size=224,
            patch_size=16,
            out_type='featmap'),  # last block + final LayerNorm
        checkpoint='checkpoints/mocov3_vit-base-300ep_mmpretrain.pth'))
