# SdAE Table 3 (§4.3): ViT-B/16 pre-trained 300 epochs (the student,
# configs/sdae/sdae_vit-base-p16_8xb96-amp-coslr-300e_in1k.py), UperNet on
# ADE20K "based on the same implementation" as BEiT / MAE / CAE: the MAE
# recipe of the base config. For the EMA teacher use
# pretrain_to_transfer.py --encoder teacher.
_base_ = './upernet_vit-base-p16_8xb2-amp-160k_ade20k-512x512.py'

model = dict(
    backbone=dict(
        init_cfg=dict(checkpoint='checkpoints/sdae_vit-base-p16_300e/'
                      'mmseg_backbone_512px.pth')))
