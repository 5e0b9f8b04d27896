# MOMA "Large to Base" (paper Table 3 and Table 1: the 84.2 % headline).
# As "MAE to MoCo" (ViT-B student from MoCo v3, original view only) with a
# frozen MAE ViT-L/16 teacher; the linear projector maps the student's 768
# channels to the teacher's 1024.
# Teacher weights (the official file also loads directly):
#   python tools/model_converters/mae_to_mmpretrain.py \
#       mae_pretrain_vit_large.pth \
#       checkpoints/mae_pretrain_vit_large_mmpretrain.pth
_base_ = ['./moma-mae-to-mocov3_vit-base-p16_8xb512-amp-coslr-100e_in1k.py']
model = dict(
    teachers=dict(
        mae=dict(
            teacher=dict(
                dtype='bfloat16',  # frozen: bf16 weights, no per-step casts
                network=dict(arch='l'),
                checkpoint='checkpoints/mae_pretrain_vit_large_mmpretrain.pth'
            ))))
