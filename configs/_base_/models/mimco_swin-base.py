# MimCo (paper §3) with a Swin-B student (mmpretrain's SimMIMSwinTransformer:
# masked patches replaced by a mask token) and a frozen MoBY Swin-B teacher
# (§3.3; patch 4, window 7). The losses use the last stage's 7 x 7 map
# (stride 32 = the mask patch size, so every cell is wholly masked or not).
# Masking, heads, queues and losses: mimco_heads.py.
# Teacher weights: a MoBY checkpoint converted with
#   python tools/model_converters/moby_to_mmpretrain.py \
#       moby_swin_b_300ep_pretrained.pth \
#       checkpoints/moby_swin-base-300ep_mmpretrain.pth
# (MoBY's public release has Swin-T only; the paper's Swin-B teacher is the
# authors' own 300-epoch MoBY run.)
_base_ = ['./mimco_heads.py']
model = dict(
    backbone=dict(
        type='SimMIMSwinTransformer',
        arch='base',
        img_size=224,
        out_indices=(3, ),
        drop_path_rate=0.0),  # the paper does not say
    teacher=dict(
        dtype='bfloat16',  # frozen: bf16 weights, no per-step casts
        network=dict(
            type='SwinTransformer',
            arch='base',
            img_size=224,
            out_indices=(3, )),  # last stage + its norm
        checkpoint='checkpoints/moby_swin-base-300ep_mmpretrain.pth'))
