# MOMA (paper §3.2) with a ViT-B/16 student that sees 10 % of its tokens.
# Recipes add `teachers` (name -> dict(teacher=FrozenTeacher config,
# loss_weight, student_view, teacher_view, projector)) and the student's
# init_cfg. teacher_view defaults to 0, the original view (Fig. 4).
model = dict(
    type='MOMA',
    mask_ratio=0.9,  # §4.1: "an extremely high mask ratio of 90%"
    align='both',  # CLS + visible tokens (the paper does not say)
    smooth_l1_beta=1.0,
    teacher_weighting='fixed',  # the paper's α, β (Eq. 4)
    shared_projector=False,  # one P per teacher (one teacher: the same)
    backbone=dict(
        type='MaskedViT',
        arch='b',
        img_size=224,
        patch_size=16,
        out_type='raw',
        final_norm=True),
    teachers=dict())
