# M-MoCo / M-BYOL pre-training schedule for the 800-epoch ImageNet-100 runs
# (Table 3, §3.5 / Fig. 7): the §3.1 recipe (AdamW, betas (0.9, 0.95),
# lr = 1.5e-4 x batch / 256, wd 0.1, cosine) at batch 1024 (§3.1) for 800
# epochs. The paper gives no ImageNet-100 warm-up: 40 epochs, as its
# 800-epoch ImageNet-1k recipe (Table 8, "40(800)").
_base_ = ['./mmoco_adamw_800e.py']
batch_size = 1024
optim_wrapper = dict(optimizer=dict(lr=1.5e-4 * batch_size / 256))
auto_scale_lr = dict(base_batch_size=batch_size)
