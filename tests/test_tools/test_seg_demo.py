"""The demo's UperNet segmentation transfer, end to end on tiny data.

tools/train.py trains the mmseg config and evaluates it with mmseg's
IoUMetric; tools/test.py evaluates the saved checkpoint again (both tools'
``main`` in-process); the run_demo helpers go from a pre-training
checkpoint through the checkpoint bridge to a fine-tuned mIoU (their
command-line tools in subprocesses, as the demo runs them).
"""
import json
import math
import os
import os.path as osp
import re

import pytest
import torch

from mmmoma.models.backbones import MaskedViT
from tools.dataset_converters.digit_scenes import (SEG_CLASS_NAMES,
                                                   make_digit_scenes_seg)

from .utils import REPO_ROOT, evaluate_in_process, load_tool, train_in_process

run_demo = load_tool(osp.join(REPO_ROOT, 'tools', 'run_demo.py'))


@pytest.fixture(scope='module')
def tiny_seg_set(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('seg_scenes'))
    make_digit_scenes_seg(root, num_train=8, num_val=4, show_progress=False)
    return root


def shrink(data_root, iters=3):
    """--cfg-options: tiny data, a few iterations, then evaluation."""
    return [
        f'train_dataloader.dataset.data_root={data_root}',
        f'val_dataloader.dataset.data_root={data_root}',
        f'test_dataloader.dataset.data_root={data_root}',
        'train_dataloader.batch_size=2', 'val_dataloader.batch_size=2',
        'train_dataloader.num_workers=0', 'val_dataloader.num_workers=0',
        'test_dataloader.num_workers=0', f'train_cfg.max_iters={iters}',
        f'train_cfg.val_interval={iters}',
        f'default_hooks.checkpoint.interval={iters}',
        'default_hooks.logger.interval=1'
    ]


def per_class_iou(log):
    """The per-class table that mmseg's IoUMetric prints: name -> IoU."""
    rows = re.findall(r'^\|\s*(\S+)\s*\|\s*(\S+)\s*\|\s*(\S+)\s*\|$', log,
                      re.MULTILINE)
    return {name: float(iou) for name, iou, _ in rows if name != 'Class'}


def test_upernet_demo_trains_and_evaluates_with_mmseg_iou(
        tmp_path, tiny_seg_set):
    work_dir = tmp_path / 'train'
    log = train_in_process(
        run_demo.SEG_CONFIG, work_dir,
        ['model.backbone.init_cfg=None', *shrink(tiny_seg_set)], threads=1)
    # mmseg's IoUMetric: one row per class, the background included
    # (reduce_zero_label=False), and mIoU = mean IoU of the classes present
    ious = per_class_iou(log)
    assert tuple(ious) == SEG_CLASS_NAMES
    logged = float(re.findall(r'mIoU: ([\d.]+)', log)[-1])
    present = [v for v in ious.values() if not math.isnan(v)]
    assert logged == pytest.approx(sum(present) / len(present), abs=0.02)
    assert 0.0 <= logged <= 100.0
    # run_demo reads the same number from the run's scalars.json (float32)
    assert run_demo.final_scalars(str(work_dir), 'mIoU') == pytest.approx(
        logged, abs=1e-4)

    # tools/test.py on the saved checkpoint: the same weights, the same mIoU
    out = tmp_path / 'metrics.json'
    evaluate_in_process(
        run_demo.SEG_CONFIG, work_dir / 'iter_3.pth', tmp_path / 'test',
        ['model.backbone.init_cfg=None', *shrink(tiny_seg_set)],
        extra=['--out', out], threads=1)
    assert json.loads(out.read_text())['mIoU'] == pytest.approx(
        logged, abs=1e-4)


def test_run_demo_transfer_row_from_a_pretraining_checkpoint(
        tmp_path, tiny_seg_set, monkeypatch):
    """run_demo's pretrained row: a 32 px pre-training checkpoint ->
    pretrain_to_transfer.py (64 px) -> UperNet fine-tune -> mIoU."""
    torch.manual_seed(0)
    arch = dict(
        embed_dims=128, num_layers=4, num_heads=4, feedforward_channels=512)
    student = MaskedViT(
        arch=arch, img_size=32, patch_size=4, out_type='raw',
        final_norm=True)
    state_dict = {f'backbone.{k}': v for k, v in student.state_dict().items()}
    checkpoint = tmp_path / 'epoch_8.pth'
    torch.save(dict(state_dict=state_dict, meta=dict(epoch=8, iter=88)),
               checkpoint)

    monkeypatch.setenv('PYTHONPATH', REPO_ROOT)
    monkeypatch.setattr(run_demo, 'SLOTS', run_demo.JobSlots(jobs=2))
    work_dir = str(tmp_path / 'transfer')
    backbone = run_demo.transfer_backbone(str(checkpoint), work_dir)
    assert backbone == osp.join(work_dir, 'mmseg_backbone_64px.pth')
    converted = torch.load(backbone, map_location='cpu')['state_dict']
    assert converted['pos_embed'].shape == (1, 1 + 16 * 16, 128)
    torch.testing.assert_close(converted['layers.3.ffn.layers.1.weight'],
                               student.layers[3].ffn.layers[1].weight)

    result = run_demo.segment(backbone, work_dir, shrink(tiny_seg_set))
    with open(osp.join(work_dir, 'segment.log')) as f:
        log = f.read()
    loaded = re.search(r'StrictPretrained: loaded (\d+) tensors', log)
    assert loaded and int(loaded.group(1)) == len(state_dict)
    assert 0.0 <= result['miou'] <= 100.0 and result['seconds'] > 0
    assert result['miou'] == pytest.approx(
        float(re.findall(r'mIoU: ([\d.]+)', log)[-1]), abs=1e-4)
    table = run_demo.format_transfer_table(
        [dict(name='MOMA MAE→MoCo student', **result)])
    assert table.splitlines()[-1].startswith(
        f'| MOMA MAE→MoCo student | {result["miou"]:.1f} |')
    assert os.path.isfile(osp.join(work_dir, 'iter_3.pth'))
