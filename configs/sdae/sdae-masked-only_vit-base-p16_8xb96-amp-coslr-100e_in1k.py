# SdAE ablation (paper Table 5 row 3: 83.5 %; Table 1: +38.1 % time): the
# teacher encodes all 147 masked tokens as one sequence (no folds).
_base_ = ['./sdae_vit-base-p16_8xb96-amp-coslr-100e_in1k.py']
model = dict(teacher_input='masked', num_folds=1)
