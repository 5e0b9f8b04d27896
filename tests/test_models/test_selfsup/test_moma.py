import copy

import pytest
import torch
import torch.nn.functional as F
from mmengine.runner import Runner
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from mmmoma.models.backbones import MaskedViT
from mmmoma.models.losses import smooth_l1_alignment
from mmmoma.models.masking import gather_tokens, random_token_split, split_plan

STUDENT_ARCH = dict(embed_dims=64, num_layers=2, num_heads=4,
                    feedforward_channels=128)
TEACHER_ARCH = dict(embed_dims=48, num_layers=2, num_heads=4,
                    feedforward_channels=96)


def vit(arch, **kwargs):
    return dict(type='MaskedViT', arch=arch, img_size=32, patch_size=4,
                out_type='raw', **kwargs)


@pytest.fixture(scope='module')
def teacher_ckpt(tmp_path_factory):
    torch.manual_seed(3)
    net = MaskedViT(arch=TEACHER_ARCH, img_size=32, patch_size=4)
    net.init_weights()
    path = tmp_path_factory.mktemp('moma') / 'teacher.pth'
    torch.save({'state_dict': {f'backbone.{k}': v
                               for k, v in net.state_dict().items()}}, path)
    return str(path)


def moma_cfg(teacher_ckpt, **kwargs):
    cfg = dict(
        type='MOMA',
        backbone=vit(STUDENT_ARCH),
        teachers=dict(
            moco=dict(teacher=dict(network=vit(TEACHER_ARCH),
                                   checkpoint=teacher_ckpt),
                      loss_weight=0.25, student_view=1),
            mae=dict(teacher=dict(network=vit(TEACHER_ARCH),
                                  checkpoint=teacher_ckpt),
                     loss_weight=2.0, student_view=0)),
        mask_ratio=0.75)
    cfg.update(kwargs)
    return cfg


def build(cfg):
    model = MODELS.build(cfg)
    model.init_weights()
    return model


def views(batch=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, 3, 32, 32, generator=g) for _ in range(2)]


def test_smooth_l1_hand_computed():
    prediction = torch.tensor([[[0.0, 2.0], [0.5, -1.0]]])
    target = torch.tensor([[[0.2, 0.0], [0.5, 0.5]]])
    # |d| = 0.2, 2.0, 0.0, 1.5 with beta 1: 0.5*0.04, 2-0.5, 0, 1.5-0.5
    expected = (0.02 + 1.5 + 0.0 + 1.0) / 4
    got = smooth_l1_alignment(prediction, target, beta=1.0)
    assert got.item() == pytest.approx(expected)
    # beta 0.5: 0.5*0.04/0.5, 2-0.25, 0, 1.5-0.25
    got = smooth_l1_alignment(prediction, target, beta=0.5)
    assert got.item() == pytest.approx((0.04 + 1.75 + 0 + 1.25) / 4)


def test_projectors_get_their_init(teacher_ckpt):
    model = build(moma_cfg(teacher_ckpt))
    for projector in model.projectors.values():  # TruncNormal(std=0.02)
        assert projector.layers.weight.std().item() == pytest.approx(
            0.02, rel=0.1)
        assert torch.all(projector.layers.bias == 0)


def test_student_sees_int_n_times_one_minus_r_tokens(teacher_ckpt):
    model = build(moma_cfg(teacher_ckpt, mask_ratio=0.9))
    seen = []
    model.backbone.layers[0].register_forward_hook(
        lambda module, args, out: seen.append(args[0].shape))
    model.loss(views(batch=3), None)
    # one student pass per paired view; 64 tokens, int(6.4) = 6 visible
    assert seen == [torch.Size([3, 1 + 6, 64])] * 2


@pytest.mark.parametrize('mask_ratio,visible', [(0.9, 19), (0.95, 9)])
def test_visible_count_of_a_224_px_vit_b_is_maes(teacher_ckpt, mask_ratio,
                                                 visible):
    # MAE's int(N (1 - r)) of N = 196 patches (round would give 20 and 10)
    model = build(moma_cfg(teacher_ckpt, mask_ratio=mask_ratio))
    assert model.mask_generator(2, (14, 14)).visible_ids.shape == (2, visible)


def patch_embed_inputs(model):
    """name -> the images each teacher's patch embedding receives."""
    captured = {}

    def hook(name):
        def record(module, args, out):
            captured.setdefault(name, args[0])
        return record

    for name, teacher in model.teachers.items():
        teacher.network.patch_embed.register_forward_hook(hook(name))
    return captured


@pytest.mark.parametrize('moco_view', [0, 1])
def test_each_teacher_is_fed_its_teacher_view(teacher_ckpt, moco_view):
    # Fig. 4: "the teacher takes the original image (or optionally strong
    # augmented image)"
    cfg = moma_cfg(teacher_ckpt)
    cfg['teachers']['moco']['teacher_view'] = moco_view
    model = build(cfg)
    assert model.teacher_views == dict(moco=moco_view, mae=0)
    captured = patch_embed_inputs(model)
    inputs = views()
    model.loss(inputs, None)
    assert torch.equal(captured['moco'], inputs[moco_view])
    assert torch.equal(captured['mae'], inputs[0])  # the default
    # and the loss is the Smooth L1 against that view's teacher tokens
    torch.manual_seed(5)
    losses = model.loss(inputs, None)
    torch.manual_seed(5)
    for view in (0, 1):  # the students' masks, drawn in view order
        split = random_token_split(2, 64, 0.75)
        if view == 1:
            ids_keep = split.ids_keep
            student = model.backbone(inputs[1], token_ids=ids_keep)[-1]
    target = model.teachers['moco'](inputs[moco_view])[-1]
    target = torch.cat(
        [target[:, :1], gather_tokens(target[:, 1:], ids_keep)], dim=1)
    expected = 0.25 * F.smooth_l1_loss(model.projectors['moco'](student),
                                       target)
    torch.testing.assert_close(losses['loss_moco'], expected)


@pytest.mark.parametrize('view', ['strong', -1, True, 0.0])
def test_bad_teacher_view_raises_naming_the_field(teacher_ckpt, view):
    cfg = moma_cfg(teacher_ckpt)
    cfg['teachers']['moco']['teacher_view'] = view
    with pytest.raises(ValueError,
                       match=r'MOMA\.teachers\.moco\.teacher_view must be '
                       r'a view index int >= 0 \(0: the original view, 1'):
        MODELS.build(cfg)


def test_teacher_view_missing_from_the_pipeline_raises(teacher_ckpt):
    cfg = moma_cfg(teacher_ckpt)
    cfg['teachers']['mae']['teacher_view'] = 2
    model = build(cfg)
    with pytest.raises(ValueError, match='teachers.mae.teacher_view=2'):
        model.loss(views(), None)  # two views: 0 and 1


def test_shared_projector_is_one_module_trained_by_both_teachers(
        teacher_ckpt):
    # Eq. 4 writes one projector P for both teachers
    model = build(moma_cfg(teacher_ckpt, shared_projector=True))
    projector = model.projectors['moco']
    assert model.projectors['mae'] is projector
    own = {id(p) for p in projector.parameters()}
    assert len(own) == 2  # one weight, one bias ...
    assert sum(id(p) in own for p in model.parameters()) == 2  # ... once
    separate = build(moma_cfg(teacher_ckpt))
    assert len(list(separate.parameters())) == \
        len(list(model.parameters())) + 2
    # its gradient is the sum of both teachers' gradients, each non-zero
    inputs = views()
    grads = []
    for key in ('loss_moco', 'loss_mae', None):
        model.zero_grad()
        torch.manual_seed(7)
        losses = model.loss(inputs, None)
        (losses[key] if key else sum(losses.values())).backward()
        grads.append(projector.layers.weight.grad.clone())
    moco, mae, total = grads
    assert moco.abs().sum() > 0 and mae.abs().sum() > 0
    torch.testing.assert_close(total, moco + mae)


def test_shared_projector_needs_one_projector_config(teacher_ckpt):
    cfg = moma_cfg(teacher_ckpt, shared_projector=True)
    cfg['teachers']['mae']['projector'] = dict(type='TokenProjector',
                                               hidden_dims=32)
    with pytest.raises(ValueError, match='MOMA.shared_projector=True'):
        MODELS.build(cfg)
    with pytest.raises(ValueError, match='MOMA.shared_projector must be'):
        MODELS.build(moma_cfg(teacher_ckpt, shared_projector='yes'))


def test_targets_come_from_the_unmasked_original_view(teacher_ckpt):
    model = build(moma_cfg(teacher_ckpt))
    seen = []
    for teacher in model.teachers.values():
        teacher.network.layers[0].register_forward_hook(
            lambda module, args, out: seen.append(args[0].shape))
    original, strong = views()
    captured = []
    for teacher in model.teachers.values():
        teacher.network.patch_embed.register_forward_hook(
            lambda module, args, out: captured.append(args[0]))
    model.loss([original, strong], None)
    # each teacher sees all 64 tokens (+ CLS) of the original view, even
    # the MoCo teacher whose student is paired with the strong view
    assert seen == [torch.Size([2, 1 + 64, 48])] * 2
    assert len(captured) == 2
    assert all(torch.equal(images, original) for images in captured)


def test_loss_matches_manual_equation(teacher_ckpt):
    model = build(moma_cfg(teacher_ckpt, align='both'))
    inputs = views()
    torch.manual_seed(11)
    losses = model.loss(inputs, None)
    # Recompute Eq. (4) by hand with the same random masks.
    torch.manual_seed(11)
    expected = {}
    students = {}
    for view in (0, 1):
        split = random_token_split(2, 64, 0.75)
        students[view] = (model.backbone(inputs[view],
                                         token_ids=split.ids_keep)[-1],
                          split.ids_keep)
    for name, view, weight in (('moco', 1, 0.25), ('mae', 0, 2.0)):
        target = model.teachers[name](inputs[0])[-1]
        student, ids_keep = students[view]
        prediction = model.projectors[name](student)
        target = torch.cat(
            [target[:, :1], gather_tokens(target[:, 1:], ids_keep)], dim=1)
        expected[f'loss_{name}'] = weight * F.smooth_l1_loss(
            prediction, target)
    assert losses.keys() == expected.keys()
    for key in expected:
        torch.testing.assert_close(losses[key], expected[key])


@pytest.mark.parametrize('align,num_tokens', [('cls', 1), ('visible', 16),
                                              ('both', 17)])
def test_alignment_modes_pick_the_documented_tokens(teacher_ckpt, align,
                                                    num_tokens):
    model = build(moma_cfg(teacher_ckpt, align=align))
    prediction = torch.randn(2, 17, 48)
    target = torch.randn(2, 65, 48)
    plan = split_plan(random_token_split(2, 64, 0.75), (8, 8))
    ids_keep = plan.visible_ids
    pred, tgt = model._aligned(prediction, target, plan)
    assert pred.shape == tgt.shape == (2, num_tokens, 48)
    if align != 'cls':  # visible tokens meet the teacher token at the
        # same patch position
        torch.testing.assert_close(tgt[:, -16:],
                                   target[:, 1:][torch.arange(2)[:, None],
                                                 ids_keep])


def test_uncertainty_weighting_learns_and_logs(teacher_ckpt):
    model = build(moma_cfg(teacher_ckpt, teacher_weighting='uncertainty'))
    losses = model.loss(views(), None)
    assert set(losses) == {'loss_weighted', 'weight_moco', 'weight_mae',
                           'raw_moco', 'raw_mae'}
    assert losses['weight_moco'].item() == pytest.approx(1.0)  # s = 0
    expected = losses['raw_moco'] + losses['raw_mae']  # exp(0) L + 0
    torch.testing.assert_close(losses['loss_weighted'], expected)
    losses['loss_weighted'].backward()
    assert model.weighting.log_vars.grad is not None
    # d/ds (exp(-s) L + s) at s = 0 is 1 - L
    torch.testing.assert_close(
        model.weighting.log_vars.grad,
        1 - torch.stack([losses['raw_moco'], losses['raw_mae']]))


def test_teachers_frozen_outside_optimizer_and_checkpoint(teacher_ckpt):
    model = build(moma_cfg(teacher_ckpt))
    teacher_state = {name: copy.deepcopy(t.network.state_dict())
                     for name, t in model.teachers.items()}
    teacher_ids = {id(p) for t in model.teachers.values()
                   for p in t.network.parameters()}
    assert teacher_ids.isdisjoint(id(p) for p in model.parameters())
    assert not any('teachers.' in key for key in model.state_dict())
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model.train()
    for step in range(3):
        loss = sum(v for k, v in model.loss(views(seed=step), None).items())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    for name, teacher in model.teachers.items():
        assert not teacher.network.training
        for key, value in teacher.network.state_dict().items():
            assert torch.equal(value, teacher_state[name][key]), key
        assert all(p.grad is None for p in teacher.network.parameters())
    for name, param in model.named_parameters():
        assert param.grad is not None, name  # every student part learns


def test_tiny_moma_overfits_a_fixed_batch(teacher_ckpt):
    torch.manual_seed(0)
    model = build(moma_cfg(teacher_ckpt))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    batch = views(batch=4)
    first = None
    for _ in range(50):
        loss = sum(model.loss(batch, None).values())
        first = loss.item() if first is None else first
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() <= 0.5 * first


@pytest.mark.parametrize('kwargs,match', [
    (dict(mask_ratio=1.0), 'MOMA.mask_ratio'),
    (dict(mask_ratio=-0.1), 'MOMA.mask_ratio'),
    (dict(align='patch'), 'MOMA.align'),
    (dict(teacher_weighting='learned'), 'MOMA.teacher_weighting'),
])
def test_bad_config_values_raise_naming_the_field(teacher_ckpt, kwargs,
                                                  match):
    with pytest.raises(ValueError, match=match):
        MODELS.build(moma_cfg(teacher_ckpt, **kwargs))


def test_bad_teacher_specs_raise(teacher_ckpt, tmp_path):
    cfg = moma_cfg(teacher_ckpt)
    cfg['teachers']['moco']['projector'] = None  # 64 -> 48 needs a map
    with pytest.raises(ValueError, match='teachers.moco.projector'):
        MODELS.build(cfg)
    cfg = moma_cfg(teacher_ckpt)
    cfg['teachers']['moco']['projector'] = dict(type='TokenProjector',
                                                out_dims=32)
    with pytest.raises(ValueError, match='out_dims'):
        MODELS.build(cfg)
    cfg = moma_cfg(teacher_ckpt)
    cfg['teachers']['moco']['teacher']['checkpoint'] = str(
        tmp_path / 'missing.pth')
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        MODELS.build(cfg)
    empty = tmp_path / 'empty.pth'
    torch.save({'state_dict': {'neck.weight': torch.zeros(1)}}, empty)
    cfg = moma_cfg(teacher_ckpt)
    cfg['teachers']['moco']['teacher']['checkpoint'] = str(empty)
    with pytest.raises(Exception, match='backbone'):
        MODELS.build(cfg)  # loads no key: refused, naming the prefix
    cfg = moma_cfg(teacher_ckpt)
    cfg['teachers']['moco']['student_vew'] = 1
    with pytest.raises(ValueError, match='student_vew'):
        MODELS.build(cfg)


def test_teacher_paired_with_missing_view_raises(teacher_ckpt):
    model = build(moma_cfg(teacher_ckpt))
    with pytest.raises(ValueError, match='teachers.moco.student_view=1'):
        model.loss(views()[0], None)  # the pipeline gave one view only


class FixedViews(torch.utils.data.Dataset):

    def __len__(self):
        return 8

    def __getitem__(self, index):
        g = torch.Generator().manual_seed(index)
        return dict(inputs=[torch.randint(0, 255, (3, 32, 32), generator=g,
                                          dtype=torch.uint8)
                            for _ in range(2)],
                    data_samples=DataSample())


def moma_runner(work_dir, teacher_ckpt, max_epochs, resume=False):
    model = moma_cfg(teacher_ckpt)
    model['data_preprocessor'] = dict(
        type='SelfSupDataPreprocessor', mean=[127.5] * 3, std=[64.0] * 3)
    return Runner(
        model=model,
        work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=FixedViews(),
            sampler=dict(type='DefaultSampler', shuffle=True),
            collate_fn=dict(type='default_collate'),
            batch_size=4,
            num_workers=0),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=1e-3)),
        # the schedule spans 4 epochs in both runs (mmengine would set `end`
        # to the 2-epoch run's max_epochs otherwise)
        param_scheduler=dict(type='CosineAnnealingLR', T_max=4, begin=0,
                             end=4, by_epoch=True),
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook',
                                           interval=1)),
        custom_hooks=[dict(type='RNGStateHook')],
        default_scope='mmpretrain',
        resume=resume,
        randomness=dict(seed=0),
        experiment_name=f'moma_{max_epochs}_{resume}_{work_dir.name}')


def test_resume_mid_run_reproduces_uninterrupted_run(teacher_ckpt,
                                                     tmp_path):
    full = moma_runner(tmp_path / 'full', teacher_ckpt, max_epochs=4)
    full.train()
    moma_runner(tmp_path / 'split', teacher_ckpt, max_epochs=2).train()
    resumed = moma_runner(tmp_path / 'split', teacher_ckpt, max_epochs=4,
                          resume=True)
    resumed.train()
    want = full.model.state_dict()
    got = resumed.model.state_dict()
    assert want.keys() == got.keys()
    for key in want:
        assert torch.equal(want[key], got[key]), key
