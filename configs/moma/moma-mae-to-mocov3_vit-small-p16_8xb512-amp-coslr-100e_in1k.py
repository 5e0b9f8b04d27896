# MOMA "Base to Small" (paper Table 3: 78.6 % top-1). As "Base to Base"
# (moma-mae-to-mocov3_vit-base-p16_*: frozen MAE ViT-B/16 teacher, original
# view only) with MoCo v3's ViT-S/16 as the student (Table 3: "all students
# are MoCo pre-trained"; 12 layers, 12 heads, 384 dims: mmpretrain's
# 'mocov3-small', spelled out because that arch name only exists once a
# MoCoV3ViT has been built); the projector maps 384 -> 768 channels.
# Student weights (the official file also loads directly):
#   python tools/model_converters/mocov3_to_mmpretrain.py \
#       vit-s-300ep.pth.tar checkpoints/mocov3_vit-small-300ep_mmpretrain.pth
_base_ = ['./moma-mae-to-mocov3_vit-base-p16_8xb512-amp-coslr-100e_in1k.py']
model = dict(
    backbone=dict(
        arch=dict(
            _delete_=True,  # replaces the base's arch='b'
            embed_dims=384,
            num_layers=12,
            num_heads=12,
            feedforward_channels=1536),
        init_cfg=dict(
            checkpoint='checkpoints/mocov3_vit-small-300ep_mmpretrain.pth')))
