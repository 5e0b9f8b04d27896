# SdAE ablation (paper Table 5 row 2: 84.0 %; Table 1: +49.9 % time): the
# teacher encodes the whole image, the loss covers the masked tokens.
_base_ = ['./sdae_vit-base-p16_8xb96-amp-coslr-100e_in1k.py']
model = dict(teacher_input='full', num_folds=1)
