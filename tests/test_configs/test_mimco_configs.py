"""Every MimCo config trains for 2 iterations, as tools/train.py trains it.

Each config (configs/mimco/*.py, configs/demo/mimco_*.py) is shrunk by
:func:`~mmmoma.utils.model_shrinking.shrink_model`: a tiny ViT (64 wide, 2
blocks, 4 px patches) or a tiny two-stage Swin (16 / 32 wide, window 2,
stride 8) for student *and* teacher, 32 px images, 32-wide hidden layers in
the heads; plus 8 px mask patches, queues of 24 keys, a 16-image stand-in in
the config's own dataset type, one epoch of 2 iterations of 8 images. The
frozen teacher loads a random stand-in checkpoint of the shrunk teacher
(:func:`~mmmoma.utils.stand_in_checkpoints.write_stand_in_checkpoints`).
The config is trained in the pytest process through tools/train.py's own
config merging (``train_in_process``). The algorithm, its losses (incl. the
ablations), the pipeline and the schedule are the config's own. AMP configs
fall back to fp32 on the CPU (``mmmoma.compat.amp_to_fp32_without_gpu``).

The paper's hyper-parameters (MimCo §3.3) are checked on the configs as
written, before any shrinking.
"""
import os.path as osp
import re

import pytest
import torch
from mmengine.config import Config
from mmpretrain.registry import MODELS

from mmmoma.utils.stand_in_checkpoints import write_stand_in_checkpoints

from ..test_tools.utils import REPO_ROOT
from .pretrain_stand_in import (BATCH_SIZE, ITERS, TINY_VIT, data_options,
                                method_configs, shrunk_config)

MIMCO_CONFIGS = method_configs('mimco', 'mimco_*.py')
PAPER_CONFIGS = [path for path in MIMCO_CONFIGS
                 if osp.basename(osp.dirname(path)) == 'mimco']
# two stages: 8 x 8 tokens of 16 channels, then 4 x 4 of 32 (stride 8)
SWIN_ARCH = dict(embed_dims=16, depths=[1, 1], num_heads=[2, 2])
QUEUE_LENGTH = 24  # 3 batches: after 2 steps the pointer is at 16, not 0
HIDDEN = 32  # hidden width of the heads (their outputs keep theirs)


def test_mimco_configs_found():
    names = [osp.basename(path) for path in MIMCO_CONFIGS]
    assert len(names) == 13, names
    assert len(PAPER_CONFIGS) == 12


def is_swin(cfg: Config) -> bool:
    return cfg.model.backbone.type == 'SimMIMSwinTransformer'


def teacher_width(cfg: Config) -> int:
    """Channels of the shrunk teacher's last feature map."""
    if is_swin(cfg):  # doubled by the one patch merging
        return SWIN_ARCH['embed_dims'] * 2
    return TINY_VIT['embed_dims']


def shrunk(config: str, checkpoint_dir: str) -> tuple:
    """The config with the tiny model, its teacher's stand-in checkpoint
    and 32 px crops; and the number of tensors in that checkpoint."""
    cfg = shrunk_config(config, 'RandomResizedCrop', swin_arch=SWIN_ARCH,
                        window_size=2, head_channels=HIDDEN)
    # a multiple of the stride (4 / 8); 3 batches of keys per queue
    cfg.model.update(mask_patch_size=8, patch_queue_length=QUEUE_LENGTH,
                     image_queue_length=QUEUE_LENGTH)
    cfg.model, stand_ins = write_stand_in_checkpoints(cfg.model,
                                                      checkpoint_dir)
    assert [stand_in.field for stand_in in stand_ins] == [
        'model.teacher.checkpoint']
    return cfg, stand_ins[0].num_tensors


def paper_epochs(config: str) -> int:
    match = re.search(r'-(\d+)e_in1k\.py$', config)
    assert match, config
    return int(match.group(1))


@pytest.mark.parametrize(
    'config', PAPER_CONFIGS, ids=[osp.basename(p) for p in PAPER_CONFIGS])
def test_config_has_the_paper_hyper_parameters(config):
    """MimCo §3.3 as written in the config (not the shrunk run)."""
    cfg = Config.fromfile(config)
    name = osp.basename(config)
    model = cfg.model
    assert model.type == 'MimCo'
    # masking, losses, queues
    ablation = name.split('_')[0]
    assert model.mask_patch_size == 32
    # Table 11's row without masking; SimMIM's 60 % otherwise
    assert model.mask_ratio == (0.0 if ablation == 'mimco-no-mask' else 0.6)
    assert model.temperature == 0.2
    assert model.patch_queue_length == 4096
    assert model.image_queue_length == 4096
    assert model.get('patch_queue_key', 'all') == 'all'  # §3.2
    assert model.patch_loss == ('l1' if ablation == 'mimco-l1-patch' else
                                'contrastive')
    assert model.patch_loss_weight == (0.0 if ablation ==
                                       'mimco-image-only' else 1.0)
    # Table 7 compares patch losses alone: its contrastive row is Table 8's
    # patch-only row, so the l1 row has no image loss either
    assert model.image_loss_weight == (0.0 if ablation in (
        'mimco-patch-only', 'mimco-l1-patch') else 1.0)
    # BN statistics over all GPUs in every head, as MoBY (SyncBN)
    for head in ('patch_projector', 'patch_predictor', 'image_projector',
                 'image_predictor'):
        assert model[head].norm_cfg == dict(type='SyncBN'), head
    # student and teacher: the named arch, same patch grid
    if 'swin' in name:
        arch = 'tiny' if 'swin-tiny' in name else 'base'
        assert model.backbone.type == 'SimMIMSwinTransformer'
        assert model.teacher.network.type == 'SwinTransformer'
        assert model.backbone.arch == model.teacher.network.arch == arch
        assert model.backbone.out_indices == (3, )
        assert model.teacher.network.out_indices == (3, )
        assert f'moby_swin-{arch}' in model.teacher.checkpoint
    else:
        assert model.backbone.type == 'SimMIMViT'
        assert model.teacher.network.type == 'MaskedViT'
        for net in (model.backbone, model.teacher.network):
            assert net.patch_size == 16 and net.out_type == 'featmap'
        if 'vit-small' in name:  # MoCo v3's ViT-S: 12 heads
            assert model.backbone.arch == model.teacher.network.arch == dict(
                embed_dims=384, num_layers=12, num_heads=12,
                feedforward_channels=1536)
            assert 'mocov3_vit-small' in model.teacher.checkpoint
        else:
            assert model.backbone.arch == model.teacher.network.arch == 'b'
            assert 'mocov3_vit-base' in model.teacher.checkpoint
    assert model.backbone.img_size == model.teacher.network.img_size == 224
    # data: batch 8 x 256, one light crop shared by teacher and student
    assert '_8xb256-' in name
    loader = cfg.train_dataloader
    assert loader.batch_size == 256
    assert loader.drop_last is True  # every step enqueues a full batch
    pipeline = {t.type: t for t in loader.dataset.pipeline}
    assert [t.type for t in loader.dataset.pipeline] == [
        'LoadImageFromFile', 'RandomResizedCrop', 'RandomFlip', 'PackInputs']
    crop = pipeline['RandomResizedCrop']
    assert crop.scale == 224
    assert tuple(crop.crop_ratio_range) == (0.67, 1.0)
    assert tuple(crop.aspect_ratio_range) == (3 / 4, 4 / 3)
    assert pipeline['RandomFlip'].prob == 0.5
    assert loader.dataset.type == 'ImageNet'
    # schedule: AdamW, lr 1e-3 x 2048 / 512, wd 0.05, 10 warm-up epochs
    epochs = paper_epochs(config)
    assert epochs in (100, 300)
    optimizer = cfg.optim_wrapper.optimizer
    assert optimizer.type == 'AdamW'
    assert optimizer.lr == pytest.approx(1e-3 * 2048 / 512)
    assert optimizer.weight_decay == 0.05
    assert cfg.auto_scale_lr.base_batch_size == 8 * 256
    assert cfg.train_cfg.max_epochs == epochs
    warmup, cosine = cfg.param_scheduler
    assert warmup.type == 'LinearLR' and warmup.by_epoch
    assert (warmup.begin, warmup.end) == (0, 10)
    assert cosine.type == 'CosineAnnealingLR' and cosine.by_epoch
    assert (cosine.begin, cosine.end, cosine.T_max) == (10, epochs,
                                                        epochs - 10)
    # name says amp: bf16 on GPUs that have it, fused AdamW
    assert (cfg.optim_wrapper.type, cfg.optim_wrapper.dtype) == (
        'AutoAmpOptimWrapper', 'bfloat16')
    assert cfg.optim_wrapper.optimizer.fused is True
    hooks = [hook.type for hook in cfg.custom_hooks]
    assert 'TeacherEMAHook' in hooks and 'RNGStateHook' in hooks


@pytest.mark.parametrize('config', [
    osp.join(REPO_ROOT, 'configs', 'mimco', name) for name in (
        'mimco_swin-tiny_8xb256-amp-coslr-100e_in1k.py',
        'mimco_vit-small-p16_8xb256-amp-coslr-100e_in1k.py')
], ids=['swin', 'vit'])
def test_syncbn_heads_revert_to_bn_in_one_process(config, tmp_path):
    """The paper configs build SyncBN heads (p1, p2 and the EMA p3); the CPU
    runs of test_config_trains_two_iterations are one process, where
    mmengine's Runner.wrap_model applies revert_sync_batchnorm: every
    SyncBN becomes a BatchNorm with the same parameters and the loss is that
    of BN heads."""
    from mmengine.model import revert_sync_batchnorm
    shrunk_cfg, _ = shrunk(config, str(tmp_path))
    torch.manual_seed(0)
    model = MODELS.build(shrunk_cfg.model)
    model.init_weights()
    synced = {name for name, module in model.named_modules()
              if isinstance(module, torch.nn.SyncBatchNorm)}
    assert {'.'.join(name.split('.')[:2]) for name in synced} == {
        'patch_head.projector', 'patch_head.predictor',
        'patch_head.momentum_projector', 'image_head.projector',
        'image_head.predictor', 'image_head.momentum_projector'}
    bn = [name for name, module in model.named_modules()
          if isinstance(module, torch.nn.modules.batchnorm._BatchNorm)]
    assert sorted(bn) == sorted(synced)  # every BN of the model is synced
    state = {k: v.clone() for k, v in model.state_dict().items()}
    model = revert_sync_batchnorm(model)
    assert not [m for m in model.modules()
                if isinstance(m, torch.nn.SyncBatchNorm)]
    reverted = model.state_dict()
    assert reverted.keys() == state.keys()
    assert all(torch.equal(reverted[k], state[k]) for k in state)
    losses = model.loss(torch.randn(BATCH_SIZE, 3, 32, 32), None)
    assert losses and all(torch.isfinite(v) for v in losses.values())


def expected_losses(cfg: Config) -> set:
    losses = set()
    if cfg.model.get('patch_loss_weight', 1.0) > 0:
        losses.add('loss_patch')
    if cfg.model.get('image_loss_weight', 1.0) > 0:
        losses.add('loss_image')
    return losses


@pytest.mark.parametrize(
    'config', MIMCO_CONFIGS, ids=[osp.basename(p) for p in MIMCO_CONFIGS])
def test_config_trains_two_iterations(config, imagenet_stand_in,
                                      tiny_image_folder, tmp_path,
                                      train_in_process):
    cfg, num_teacher_tensors = shrunk(config, str(tmp_path / 'stand_in'))
    assert cfg.model.type == 'MimCo'
    assert 'TeacherEMAHook' in [hook.type for hook in cfg.custom_hooks]
    options = data_options(cfg, tiny_image_folder, imagenet_stand_in)
    run = train_in_process(cfg, options)
    log = run.log
    # the frozen teacher was built from the stand-in checkpoint
    assert (f'FrozenTeacher: loaded {num_teacher_tensors} tensors from '
            f'{cfg.model.teacher.checkpoint}') in log, log[-4000:]
    iter_lines = [line for line in log.splitlines()
                  if 'Epoch(train)' in line]
    assert len(iter_lines) == ITERS, iter_lines  # logger interval 1
    losses = expected_losses(cfg)
    for line in iter_lines:
        logged = set(re.findall(r'\b(loss_\w+): ', line))
        assert logged == losses, line
    if cfg.optim_wrapper.type == 'AutoAmpOptimWrapper':
        assert 'AutoAmpOptimWrapper: float32 on cpu' in log

    checkpoint = torch.load(run.last_checkpoint, map_location='cpu')
    assert checkpoint['meta']['iter'] == ITERS
    state_dict = checkpoint['state_dict']
    # the frozen teacher is rebuilt from its own file: not saved
    assert not [key for key in state_dict if key.startswith('teacher.')]
    # the student is the shrunk one, with its mask token
    width = SWIN_ARCH['embed_dims'] if is_swin(cfg) else 64  # TINY_VIT
    assert state_dict['backbone.mask_token'].shape == (1, 1, width)
    if not is_swin(cfg):
        assert state_dict['backbone.pos_embed'].shape == (1, 65, 64)

    contrastive = {'image'} if 'loss_image' in losses else set()
    if 'loss_patch' in losses and cfg.model.patch_loss == 'contrastive':
        contrastive.add('patch')
    for prefix in ('patch', 'image'):
        keys = [key for key in state_dict if key.startswith(prefix + '_')]
        if prefix not in contrastive:
            if prefix == 'patch' and 'loss_patch' in losses:  # l1 ablation
                assert {'.'.join(key.split('.')[:2]) for key in keys} == {
                    'patch_head.projector', 'patch_head.predictor'}
                # p2 predicts the teacher's feature map: its width
                convs = [state_dict[key] for key in keys
                         if key.startswith('patch_head.predictor.')
                         and state_dict[key].dim() == 4]
                assert convs[-1].shape[0] == teacher_width(cfg)
            else:  # the switched-off term builds no heads, no queue
                assert not keys, keys
            continue
        # the queue advanced by one batch of keys per step
        queue = state_dict[f'{prefix}_head.queue.keys']
        assert queue.shape == (QUEUE_LENGTH,
                               cfg.model[f'{prefix}_projector'].out_channels)
        assert int(state_dict[f'{prefix}_head.queue.ptr']) == \
            ITERS * BATCH_SIZE % QUEUE_LENGTH == 16
        assert torch.allclose(queue.norm(dim=1), torch.ones(QUEUE_LENGTH),
                              atol=1e-5)
        # p3 is an EMA (momentum < 1) of p1, which the optimiser moved:
        # after 2 steps they differ, but only slightly (an independent
        # initialisation would differ by ~140 %)
        projector = {key[len(f'{prefix}_head.projector.'):]: value
                     for key, value in state_dict.items()
                     if key.startswith(f'{prefix}_head.projector.')}
        momentum = {key[len(f'{prefix}_head.momentum_projector.'):]: value
                    for key, value in state_dict.items()
                    if key.startswith(f'{prefix}_head.momentum_projector.')}
        assert projector.keys() == momentum.keys()
        weights = [key for key in projector if key.endswith('weight')]
        assert weights
        for key in weights:
            assert not torch.equal(projector[key], momentum[key]), key
            difference = (projector[key] - momentum[key]).norm()
            assert difference < 0.1 * projector[key].norm(), key
