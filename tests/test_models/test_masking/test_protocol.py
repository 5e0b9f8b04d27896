"""The masking protocol across algorithms: a mask generator registered here,
in the test file, drives each of the four methods and the visualiser with
no library edit; the mix configs (combinations no paper has) train and
draw."""
import os.path as osp
from typing import List, Optional

import pytest
import torch
from mmpretrain.registry import MODELS

from mmmoma.models.masking import MaskPlan, TeacherTokens
from mmmoma.models.masking.plan import empty_ids
from mmmoma.visualization import (MASKED, VISIBLE, masking_panels,
                                  render_masking_figure)

from ..demo_models import (BATCH, DEMO, METHODS, MIX, build, images,
                           total_loss, uint8_views)

GRID = (8, 8)  # 32 px digit-scene crops, 4 px patches


@MODELS.register_module(force=True)
class CheckerboardMask:
    """A toy strategy: the encoder sees the patches with an even ``row +
    column``, the others are the target side, one group. Deterministic, so
    its patches can be checked; counts its calls."""

    calls: List[tuple] = []

    def __init__(self, phase: int = 0) -> None:
        self.phase = phase

    def __call__(self, batch_size: int, grid, device=None,
                 generator: Optional[torch.Generator] = None) -> MaskPlan:
        CheckerboardMask.calls.append((batch_size, tuple(grid)))
        rows, cols = torch.meshgrid(torch.arange(grid[0]),
                                    torch.arange(grid[1]), indexing='ij')
        even = ((rows + cols + self.phase) % 2 == 0).flatten()
        ids = torch.arange(grid[0] * grid[1], device=device)
        visible = ids[even.to(ids.device)].expand(batch_size, -1)
        hidden = ids[~even.to(ids.device)].expand(batch_size, -1)
        return MaskPlan(visible[:, None], hidden[:, None],
                        empty_ids(batch_size, device, 0), tuple(grid))


def checkerboard(batch_size: int = BATCH) -> torch.Tensor:
    """(B, 8, 8) roles of the toy's plan: VISIBLE on even cells."""
    rows, cols = torch.meshgrid(torch.arange(8), torch.arange(8),
                                indexing='ij')
    roles = torch.where((rows + cols) % 2 == 0, VISIBLE, MASKED)
    return roles.expand(batch_size, -1, -1)


@pytest.mark.parametrize('method', sorted(METHODS))
def test_a_generator_registered_in_a_test_drives_every_method(method):
    config, scalars, num_views = METHODS[method]
    options = {name: None for name in scalars}
    model = build(osp.join(DEMO, config),
                  mask_generator=dict(type='CheckerboardMask'), **options)
    assert isinstance(model.mask_generator, CheckerboardMask)
    CheckerboardMask.calls.clear()
    losses = model.loss(images(num_views), None)
    loss = total_loss(losses)
    assert torch.isfinite(loss)
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0
               for p in model.backbone.parameters())
    # the loss drew its masks from the toy, on the batch's patch grid
    assert CheckerboardMask.calls and set(CheckerboardMask.calls) == {
        (BATCH, GRID)}

    # the visualiser draws the same plan through the same protocol
    figure = masking_panels(model, uint8_views(num_views),
                            torch.Generator().manual_seed(0))
    student = figure.panels[1]
    assert torch.equal(student.roles, checkerboard())
    assert '32 of 64 patches visible' in student.title


def test_the_toy_plan_is_what_the_sdae_teacher_encodes():
    config, scalars, _ = METHODS['sdae']
    model = build(osp.join(DEMO, config),
                  mask_generator=dict(type='CheckerboardMask', phase=1),
                  **{name: None for name in scalars})
    assert model.num_folds == 1 and model.mask_ratio is None
    captured = []
    original = model.targets

    def spy(inputs, tokens: TeacherTokens):
        captured.append(tokens)
        return original(inputs, tokens)

    model.targets = spy
    model.loss(images(1), None)
    odd = torch.tensor([i for i in range(64) if (i // 8 + i % 8) % 2 == 0])
    # phase 1: the student sees the odd cells, the teacher the even ones
    assert torch.equal(captured[0].fold_ids[0, 0], odd)


def test_a_generator_and_its_scalar_settings_clash_naming_both():
    config, _, _ = METHODS['moma']
    with pytest.raises(ValueError, match=r'MOMA.mask_generator .* '
                       r'MOMA.mask_ratio .* must be left out'):
        build(osp.join(DEMO, config), mask_ratio=0.5,
              mask_generator=dict(type='CheckerboardMask'))


MIXES = sorted(name for name in (
    'moma-simmim-blocks_vit-tiny-p4_1xb128-24e_digit-scenes.py',
    'moma-chunks_vit-tiny-p4_1xb128-24e_digit-scenes.py',
    'sdae-simmim-block-folds_vit-tiny-p4_1xb128-100e_digit-scenes.py',
    'mmoco-simmim-blocks_vit-tiny-p4_1xb128-12e_digit-scenes.py'))


@pytest.mark.parametrize('config', MIXES)
def test_mix_configs_train_two_iterations_and_draw(config, tmp_path):
    model = build(osp.join(MIX, config))
    model.train()
    num_views = 2 if config.startswith('mmoco') else 1
    frozen = {name: value.clone() for name, value in model.state_dict()
              .items() if name.startswith(('teacher', 'momentum_encoder'))}
    trained = [p for p in model.parameters() if p.requires_grad]
    before = [p.detach().clone() for p in trained]
    optimizer = torch.optim.AdamW(trained, lr=1e-3)
    for step in range(2):
        optimizer.zero_grad()
        loss = total_loss(model.loss(images(num_views, seed=step), None))
        assert torch.isfinite(loss)
        loss.backward()
        optimizer.step()
    assert any(not torch.equal(b, p) for b, p in zip(before, trained))
    # frozen teachers and EMA targets: only the EMA hook changes them
    for name, value in frozen.items():
        assert torch.equal(model.state_dict()[name], value), name

    figure = masking_panels(model, uint8_views(num_views),
                            torch.Generator().manual_seed(0))
    masked = [panel for panel in figure.panels[1:] if panel.roles is not None]
    assert masked, 'the mix masks something'
    out = tmp_path / 'mix.png'
    render_masking_figure(figure, config, str(out))
    assert out.read_bytes()[:4] == b'\x89PNG'


def test_simmim_blocks_in_folds_are_whole_blocks():
    model = build(osp.join(
        MIX, 'sdae-simmim-block-folds_vit-tiny-p4_1xb128-100e_digit-scenes'
        '.py'))
    plan = model.plan(torch.zeros(BATCH, 3, 32, 32),
                      torch.Generator().manual_seed(3))
    assert plan.visible.shape == (BATCH, 1, 16)
    assert plan.targets.shape == (BATCH, 3, 16)
    for fold in plan.targets.flatten(0, 1):
        cells = {(int(i) // 8 // 2, int(i) % 8 // 2) for i in fold}
        assert len(cells) == 4  # 16 patches = 4 whole 2 x 2 blocks
