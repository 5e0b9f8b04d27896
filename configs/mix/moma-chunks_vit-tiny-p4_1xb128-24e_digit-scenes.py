# Mix (no paper has it): MOMA distillation into an M-MoCo-style chunked
# student. The student sees every patch, shuffled into 4 chunks of 16, each
# encoded with its own CLS token; every chunk's CLS output and each patch
# token are aligned with the frozen MAE teacher.
_base_ = ['../demo/moma-mae-to-mocov3_vit-tiny-p4_1xb128-24e_digit-scenes.py']
model = dict(
    mask_ratio=None,
    mask_generator=dict(type='ShuffledChunks', num_chunks=4))
