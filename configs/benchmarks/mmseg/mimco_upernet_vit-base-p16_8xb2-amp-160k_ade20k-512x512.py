# MimCo Table 3 (§4.1), ViT-B/16 row: UperNet on ADE20K, 160k iterations,
# from configs/mimco/mimco_vit-base-p16_8xb256-amp-coslr-300e_in1k.py. The
# paper gives no other setting for the ViT row: the MAE recipe of the base.
_base_ = './upernet_vit-base-p16_8xb2-amp-160k_ade20k-512x512.py'

model = dict(
    backbone=dict(
        init_cfg=dict(checkpoint='checkpoints/mimco_vit-base-p16_300e/'
                      'mmseg_backbone_512px.pth')))
