# SdAE ablation (paper Fig. 3c / 4b, Table 1: +11.8 % time): the teacher
# encodes a random crop of r_c of the masked tokens, the loss covers those.
# r_c = 1/3 gives 49 of the 147 masked tokens, the size of one fold.
_base_ = ['./sdae_vit-base-p16_8xb96-amp-coslr-100e_in1k.py']
model = dict(teacher_input='crop', crop_ratio=1 / 3, num_folds=1)
