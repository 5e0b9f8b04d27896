import copy

import pytest
import torch
from mmengine.model import BaseModel
from mmpretrain.registry import MODELS
from torch import nn

import mmmoma.models.utils  # noqa: F401  (registers FrozenTeacher)
from mmmoma.models.backbones import MaskedViT


def save_backbone_checkpoint(path, arch, seed=1):
    torch.manual_seed(seed)
    net = MaskedViT(arch=arch, img_size=32, patch_size=4, out_type='raw')
    net.init_weights()
    torch.save({'state_dict': {f'backbone.{k}': v
                               for k, v in net.state_dict().items()},
                'meta': {}}, path)
    return net.state_dict()


def teacher_cfg(arch, checkpoint, **kwargs):
    return dict(
        type='FrozenTeacher',
        network=dict(type='MaskedViT', arch=arch, img_size=32, patch_size=4,
                     out_type='raw'),
        checkpoint=str(checkpoint),
        **kwargs)


@MODELS.register_module(force=True)
class ToyDistiller(BaseModel):
    """A student ViT regressing a frozen teacher's tokens (test only)."""

    def __init__(self, arch, teacher, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.student = MaskedViT(arch=arch, img_size=32, patch_size=4,
                                 out_type='raw')
        self.projector = nn.Linear(arch['embed_dims'], arch['embed_dims'])
        self.teacher = MODELS.build(teacher)

    def forward(self, inputs, data_samples=None, mode='loss'):
        target = self.teacher(inputs)[0]
        pred = self.projector(self.student(inputs)[0])
        return dict(loss=(pred - target).square().mean())


@pytest.fixture
def teacher_ckpt(tmp_path, tiny_arch):
    path = tmp_path / 'teacher.pth'
    state = save_backbone_checkpoint(path, tiny_arch)
    return path, state


def test_loads_checkpoint_and_freezes(teacher_ckpt, tiny_arch):
    path, state = teacher_ckpt
    teacher = MODELS.build(teacher_cfg(tiny_arch, path))
    for key, value in teacher.network.state_dict().items():
        assert torch.equal(value, state[key]), key
    assert all(not p.requires_grad for p in teacher.network.parameters())
    out = teacher(torch.randn(2, 3, 32, 32))[0]
    assert not out.requires_grad and out.grad_fn is None


def test_frozen_through_training_steps(teacher_ckpt, tiny_arch):
    path, state = teacher_ckpt
    model = ToyDistiller(tiny_arch, teacher_cfg(tiny_arch, path))
    # hidden from parameters(): never in the optimizer
    teacher_ids = {id(p) for p in model.teacher.network.parameters()}
    assert teacher_ids.isdisjoint(id(p) for p in model.parameters())
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2,
                                  weight_decay=0.1)
    before = copy.deepcopy(model.student.state_dict())
    model.train()
    for _ in range(3):
        loss = model(torch.randn(4, 3, 32, 32))['loss']
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert not model.teacher.network.training  # eval mode kept
    assert model.teacher.training  # the wrapper records the mode
    for key, value in model.teacher.network.state_dict().items():
        assert torch.equal(value, state[key]), key
    for param in model.teacher.network.parameters():
        assert param.grad is None
    changed = [k for k, v in model.student.state_dict().items()
               if not torch.equal(v, before[k])]
    assert changed  # the student did train


def test_parent_init_weights_cannot_touch_teacher(teacher_ckpt, tiny_arch):
    path, state = teacher_ckpt
    model = ToyDistiller(
        tiny_arch, teacher_cfg(tiny_arch, path),
        init_cfg=[dict(type='Xavier', layer='Linear'),
                  dict(type='Constant', layer='LayerNorm', val=3.0)])
    model.init_weights()
    for key, value in model.teacher.network.state_dict().items():
        assert torch.equal(value, state[key]), key
    assert torch.all(model.student.ln1.weight == 3.0)  # student was init'd


def test_left_out_of_state_dict_by_default(teacher_ckpt, tiny_arch):
    path, state = teacher_ckpt
    model = ToyDistiller(tiny_arch, teacher_cfg(tiny_arch, path))
    keys = list(model.state_dict())
    assert not any(k.startswith('teacher') for k in keys)
    assert any(k.startswith('student.') for k in keys)
    # loading a checkpoint without teacher keys reports nothing missing
    result = model.load_state_dict(model.state_dict(), strict=True)
    assert not result.missing_keys and not result.unexpected_keys


def test_save_in_checkpoint_round_trip(teacher_ckpt, tiny_arch, tmp_path):
    path, state = teacher_ckpt
    model = ToyDistiller(
        tiny_arch, teacher_cfg(tiny_arch, path, save_in_checkpoint=True))
    saved = model.state_dict()
    teacher_keys = [k for k in saved if k.startswith('teacher.network.')]
    assert len(teacher_keys) == len(state)
    other_path = tmp_path / 'other.pth'
    save_backbone_checkpoint(other_path, tiny_arch, seed=7)
    other = ToyDistiller(
        tiny_arch, teacher_cfg(tiny_arch, other_path,
                               save_in_checkpoint=True))
    other.load_state_dict(saved, strict=True)
    for key, value in other.teacher.network.state_dict().items():
        assert torch.equal(value, state[key]), key
    assert all(not p.requires_grad for p in other.teacher.network.parameters())


def test_dtype_moves_reach_teacher(teacher_ckpt, tiny_arch):
    path, _ = teacher_ckpt
    model = ToyDistiller(tiny_arch, teacher_cfg(tiny_arch, path))
    model.to(torch.float64)
    assert model.teacher.network.pos_embed.dtype == torch.float64
    out = model(torch.randn(1, 3, 32, 32, dtype=torch.float64))
    assert out['loss'].dtype == torch.float64


def test_missing_checkpoint_and_missing_keys_raise(tmp_path, tiny_arch):
    with pytest.raises(FileNotFoundError, match='nowhere.pth'):
        MODELS.build(teacher_cfg(tiny_arch, tmp_path / 'nowhere.pth'))
    with pytest.raises(ValueError, match='checkpoint'):
        MODELS.build(teacher_cfg(tiny_arch, ''))
    path = tmp_path / 'partial.pth'
    save_backbone_checkpoint(path, tiny_arch)
    ckpt = torch.load(path)
    del ckpt['state_dict']['backbone.layers.1.ffn.layers.1.weight']
    del ckpt['state_dict']['backbone.ln1.bias']
    torch.save(ckpt, path)
    with pytest.raises(Exception) as err:
        MODELS.build(teacher_cfg(tiny_arch, path))
    assert 'layers.1.ffn.layers.1.weight' in str(err.value)
    assert 'ln1.bias' in str(err.value)


class RandomImages(torch.utils.data.Dataset):

    def __len__(self):
        return 8

    def __getitem__(self, index):
        generator = torch.Generator().manual_seed(index)
        return dict(inputs=torch.randn(3, 32, 32, generator=generator))


def distiller_runner(work_dir, arch, teacher_path, max_epochs, resume=False):
    from mmengine.runner import Runner
    return Runner(
        model=dict(type='ToyDistiller', arch=arch,
                   teacher=teacher_cfg(arch, teacher_path)),
        work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=RandomImages(),
            sampler=dict(type='DefaultSampler', shuffle=True),
            collate_fn=dict(type='default_collate'),
            batch_size=4,
            num_workers=0),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=1e-2)),
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook',
                                           interval=1)),
        default_scope='mmpretrain',
        resume=resume,
        randomness=dict(seed=0),
        experiment_name=f'distiller_{max_epochs}_{resume}')


def test_runner_checkpoint_excludes_teacher_and_resume_rebuilds_it(
        teacher_ckpt, tiny_arch, tmp_path):
    path, state = teacher_ckpt
    work_dir = tmp_path / 'run'
    distiller_runner(work_dir, tiny_arch, path, max_epochs=2).train()
    saved = torch.load(work_dir / 'epoch_2.pth', map_location='cpu')
    assert not any('teacher' in k for k in saved['state_dict'])
    assert any(k.startswith('student.') for k in saved['state_dict'])
    # the optimizer state covers the student and projector only
    num_trainable = len(list(ToyDistiller(
        tiny_arch, teacher_cfg(tiny_arch, path)).parameters()))
    assert len(saved['optimizer']['state']) == num_trainable

    runner = distiller_runner(work_dir, tiny_arch, path, max_epochs=3,
                              resume=True)
    runner.train()
    assert runner.epoch == 3
    teacher = runner.model.teacher
    for key, value in teacher.network.state_dict().items():
        assert torch.equal(value, state[key]), key  # rebuilt, untouched
    assert not teacher.network.training
    student = runner.model.student.state_dict()
    resumed_from = saved['state_dict']
    assert any(not torch.equal(student[k], resumed_from['student.' + k])
               for k in student)  # the third epoch trained the student
