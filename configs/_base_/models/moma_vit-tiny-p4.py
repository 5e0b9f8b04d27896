# MOMA demo model: the demo's tiny ViT (32 px, 4 px patches, 64 tokens) as
# student and as teacher network. Teacher checkpoints / student init are
# filled in by tools/run_demo.py through --cfg-options.
arch = dict(
    embed_dims=128, num_layers=4, num_heads=4, feedforward_channels=512)
tiny_vit = dict(
    type='MaskedViT',
    arch=arch,
    img_size=32,
    patch_size=4,
    out_type='raw',
    final_norm=True)
model = dict(
    type='MOMA',
    mask_ratio=0.9,  # 6 of 64 tokens visible
    align='both',
    smooth_l1_beta=1.0,
    teacher_weighting='fixed',
    backbone=tiny_vit,
    teachers=dict())
