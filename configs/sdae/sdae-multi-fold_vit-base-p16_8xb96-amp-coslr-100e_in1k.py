# SdAE ablation (paper Table 5 row 4: 84.1 %; Table 1: +28.1 % time): the
# default multi-fold masking, 147 masked tokens in 3 folds of 49, spelled
# out next to the other teacher inputs (Fig. 4b also varies num_folds: 2
# folds of 73 (+1 left out), 4 folds of 36 (+3 left out)).
_base_ = ['./sdae_vit-base-p16_8xb96-amp-coslr-100e_in1k.py']
model = dict(teacher_input='masked', num_folds=3)
