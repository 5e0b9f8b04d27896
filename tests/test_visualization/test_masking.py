"""The masking pictures: roles come from the models' own mask generators
(the ones ``loss`` calls, through the ``encoder_inputs`` protocol), every
patch gets exactly one role, and the colour map has one colour per fold /
chunk."""
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmpretrain.registry import MODELS

from mmmoma.models.masking.indices import num_visible_tokens
from mmmoma.models.utils.frozen_teacher import teachers_without_weights
from mmmoma.visualization import (MASKED, VISIBLE, Panel, group_colours,
                                  masking_panels, patch_roles,
                                  render_masking_figure)
from mmmoma.visualization.masking import (MASKED_GREY, TINT, compose_panel,
                                          legend_entries)

from ..test_tools.utils import REPO_ROOT

DEMO = osp.join(REPO_ROOT, 'configs', 'demo')
BATCH = 3


def demo_model(name: str, **model_options) -> torch.nn.Module:
    """A demo config's model (tiny ViT, 32 px, patch 4), structure only."""
    cfg = Config.fromfile(osp.join(DEMO, name))
    cfg.model.update(model_options)
    with teachers_without_weights():
        return MODELS.build(cfg.model)


def views(num_views: int = 1, size: int = 32, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    return [
        torch.randint(0, 256, (BATCH, 3, size, size), generator=generator,
                      dtype=torch.uint8) for _ in range(num_views)
    ]


def roles_count(roles: torch.Tensor, role: int) -> torch.Tensor:
    return (roles == role).flatten(1).sum(1)


@pytest.mark.parametrize('num_groups', [1, 3, 8, 9, 10, 12, 18, 19, 25, 64])
def test_group_colours_are_exactly_k_distinct_colours(num_groups):
    colours = group_colours(num_groups)
    assert colours.shape == (num_groups, 3)
    assert len({tuple(np.round(c, 4)) for c in colours}) == num_groups
    assert colours.min() >= 0 and colours.max() <= 1
    # none of them is a grey (masked) or white (visible)
    assert np.all(np.ptp(colours, axis=1) > 0.1)


def test_patch_roles_later_groups_override_visible():
    visible = torch.tensor([[0, 1, 2]])
    groups = torch.tensor([[[2, 3]], ])  # group 1 = {2, 3}
    roles = patch_roles(1, (2, 3), visible, groups)
    assert roles.tolist() == [[[VISIBLE, VISIBLE, 1], [1, MASKED, MASKED]]]


def test_panel_rejects_roles_outside_its_groups():
    with pytest.raises(ValueError, match=r'roles must lie in \[-1, 2\]'):
        Panel('bad', views()[0], torch.full((BATCH, 8, 8), 3), num_groups=2)


@pytest.mark.parametrize('num_folds', [1, 3, 4])
def test_sdae_fold_panel_every_patch_one_role(num_folds):
    model = demo_model('sdae_vit-tiny-p4_1xb128-100e_digit-scenes.py',
                       num_folds=num_folds)
    figure = masking_panels(model, views(),
                            torch.Generator().manual_seed(1))
    assert [p.title.split(':')[0] for p in figure.panels] == [
        'input', 'student', 'teacher (masked)']
    teacher = figure.panels[2]
    assert teacher.num_groups == num_folds == len(
        group_colours(teacher.num_groups))
    assert teacher.group_name == 'fold'
    # the same generator state gives the model's own split
    plan = model.mask_generator(BATCH, (8, 8),
                                generator=torch.Generator().manual_seed(1))
    num_keep = num_visible_tokens(64, model.mask_ratio)
    fold_size = (64 - num_keep) // num_folds
    roles = teacher.roles.flatten(1)
    assert roles_count(teacher.roles, VISIBLE).tolist() == [num_keep] * BATCH
    for fold in range(num_folds):
        assert roles_count(teacher.roles,
                           fold + 1).tolist() == [fold_size] * BATCH
        for b in range(BATCH):
            assert set(torch.nonzero(roles[b] == fold + 1).flatten()
                       .tolist()) == set(plan.targets[b, fold].tolist())
    left_out = 64 - num_keep - num_folds * fold_size
    assert roles_count(teacher.roles, MASKED).tolist() == [left_out] * BATCH
    for b in range(BATCH):
        assert set(torch.nonzero(roles[b] == VISIBLE).flatten().tolist()) \
            == set(plan.visible_ids[b].tolist())
    # the student panel: the same visible patches, the rest masked
    student = figure.panels[1].roles
    assert torch.equal(student == VISIBLE, teacher.roles == VISIBLE)
    assert roles_count(student, MASKED).tolist() == [64 - num_keep] * BATCH


def test_sdae_loss_draws_its_masks_with_its_mask_generator(monkeypatch):
    """The visualiser's generator is the one the loss uses."""
    model = demo_model('sdae_vit-tiny-p4_1xb128-100e_digit-scenes.py')
    calls = []
    original = model.mask_generator

    def spy(*args, **kwargs):
        calls.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(model, 'mask_generator', spy)
    model.loss(views()[0].float(), [])
    masking_panels(model, views(), torch.Generator().manual_seed(1))
    assert len(calls) == 2
    assert calls[0][:2] == calls[1][:2] == (BATCH, (8, 8))


@pytest.mark.parametrize('num_chunks,num_target_chunks', [(8, 1), (3, 4),
                                                          (64, 2)])
def test_mmoco_chunk_panels(num_chunks, num_target_chunks):
    model = demo_model('mmoco_vit-tiny-p4_1xb128-12e_digit-scenes.py',
                       num_chunks=num_chunks,
                       num_target_chunks=num_target_chunks)
    figure = masking_panels(model, views(2),
                            torch.Generator().manual_seed(0))
    _, online, target = figure.panels
    assert online.num_groups == num_chunks
    assert len(group_colours(online.num_groups)) == num_chunks
    chunk_size = 64 // num_chunks
    for chunk in range(1, num_chunks + 1):
        assert roles_count(online.roles,
                           chunk).tolist() == [chunk_size] * BATCH
    assert roles_count(online.roles, MASKED).tolist() == [
        64 - chunk_size * num_chunks] * BATCH
    assert roles_count(online.roles, VISIBLE).sum() == 0
    # chunks are shuffled patches, not row-major runs
    assert not torch.equal(online.roles[0], online.roles[1])
    if num_target_chunks == 1:
        assert target.roles is None and 'full image' in target.title
    else:
        assert target.num_groups == num_target_chunks
        assert int((target.roles >= 1).sum()) == BATCH * (
            64 // num_target_chunks) * num_target_chunks
    assert not torch.equal(target.images, figure.panels[0].images)


def test_mmoco_n1_online_encoder_sees_the_full_view():
    model = demo_model('mmoco-n1_vit-tiny-p4_1xb128-12e_digit-scenes.py')
    figure = masking_panels(model, views(2),
                            torch.Generator().manual_seed(0))
    assert figure.panels[1].roles is None
    assert 'full image' in figure.panels[1].title


@pytest.mark.parametrize('config,student_views', [
    ('moma-mocov3-to-mae_vit-tiny-p4_1xb128-24e_digit-scenes.py', [1]),
    ('moma-multi-teacher_vit-tiny-p4_1xb128-12e_digit-scenes.py', None),
])
def test_moma_student_sees_ten_percent(config, student_views):
    model = demo_model(config)
    expected_views = sorted(set(model.student_views.values()))
    if student_views is not None:
        assert expected_views == student_views
    figure = masking_panels(model, views(2),
                            torch.Generator().manual_seed(0))
    students = figure.panels[1:-1]
    assert len(students) == len(expected_views)
    num_keep = num_visible_tokens(64, model.mask_ratio)
    for panel in students:
        assert roles_count(panel.roles, VISIBLE).tolist() == [num_keep] * \
            BATCH
        assert roles_count(panel.roles, MASKED).tolist() == [
            64 - num_keep] * BATCH
    assert figure.panels[-1].roles is None  # teachers: the whole view 0
    assert torch.equal(figure.panels[-1].images, figure.panels[0].images)


def test_mimco_mask_is_block_aligned():
    model = demo_model('mimco_vit-tiny-p4_1xb128-20e_digit-scenes.py')
    figure = masking_panels(model, views(size=64),
                            torch.Generator().manual_seed(0))
    roles = figure.panels[1].roles  # (B, 16, 16) on the 4 px patch grid
    block = model.mask_patch_size // model.model_patch_size
    assert roles.shape == (BATCH, 16, 16)
    blocks = roles.unfold(1, block, block).unfold(2, block, block)
    # every mask patch is wholly visible or wholly masked
    assert torch.all(blocks.amin((-1, -2)) == blocks.amax((-1, -2)))
    num_cells = (64 // model.mask_patch_size)**2
    masked_cells = num_cells - num_visible_tokens(num_cells,
                                                  model.mask_ratio)
    assert (roles_count(roles, MASKED) // block**2).tolist() == [
        masked_cells] * BATCH


def test_mmpretrain_mae_uses_random_masking_and_keeps_global_rng():
    model = demo_model('mae_vit-tiny-p4_1xb128-100e_digit-scenes.py')
    state = torch.get_rng_state()
    figure = masking_panels(model, views(),
                            torch.Generator().manual_seed(0))
    assert torch.equal(state, torch.get_rng_state())
    roles = figure.panels[1].roles
    assert roles_count(roles, VISIBLE).tolist() == [
        int(64 * (1 - model.backbone.mask_ratio))] * BATCH


def test_unsupported_model_names_the_protocol():
    with pytest.raises(TypeError, match=r'encoder_inputs\(views, generator'):
        masking_panels(torch.nn.Linear(2, 2), views(),
                       torch.Generator())


def test_mmpretrain_mocov3_draws_both_views_whole():
    model = demo_model('mocov3_vit-tiny-p4_1xb128-20e_digit-scenes.py')
    figure = masking_panels(model, views(2), torch.Generator())
    assert [panel.roles for panel in figure.panels] == [None] * 3
    assert torch.equal(figure.panels[2].images, views(2)[1])


def test_compose_panel_draws_roles():
    image = views()[0]
    roles = torch.full((BATCH, 8, 8), VISIBLE)
    roles[:, 0, 0] = MASKED
    roles[:, 0, 1] = 2
    panel = Panel('p', image, roles, num_groups=2)
    out = compose_panel(panel, 0)
    pixels = image[0].permute(1, 2, 0).numpy() / 255.0
    np.testing.assert_allclose(out[:4, :4], np.broadcast_to(
        MASKED_GREY, (4, 4, 3)))
    np.testing.assert_allclose(
        out[:4, 4:8],
        (1 - TINT) * pixels[:4, 4:8] + TINT * group_colours(2)[1])
    np.testing.assert_allclose(out[4:], pixels[4:])
    labels = [label for label, _ in legend_entries([panel])]
    assert labels == ['visible', 'masked / left out', 'group 1', 'group 2']


def test_render_writes_a_png(tmp_path):
    model = demo_model('sdae_vit-tiny-p4_1xb128-100e_digit-scenes.py')
    figure = masking_panels(model, views(),
                            torch.Generator().manual_seed(0))
    out = tmp_path / 'sdae.png'
    render_masking_figure(figure, 'sdae demo', str(out))
    with open(out, 'rb') as file:
        assert file.read(8) == b'\x89PNG\r\n\x1a\n'
