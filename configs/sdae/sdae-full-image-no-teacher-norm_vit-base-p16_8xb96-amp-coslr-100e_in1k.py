# SdAE ablation (paper Table 5 row 1: 83.7 %): the teacher encodes the whole
# image, without "teacher normalize" (Eq. 3 off: the raw teacher features,
# last block + final LayerNorm, are the targets); otherwise Table 5 row 2.
_base_ = ['./sdae-full-image_vit-base-p16_8xb96-amp-coslr-100e_in1k.py']
model = dict(normalize_target=False)
