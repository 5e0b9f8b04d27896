"""run_demo's plots: a curves figure per pre-training run and one overlay
per stage, from the runs' scalars.json files."""
import json
import os
import os.path as osp

import pytest

from .test_seg_demo import run_demo

PNG_MAGIC = b'\x89PNG\r\n\x1a\n'


def write_run(work_dir: str, records) -> None:
    folder = osp.join(work_dir, '20260101_000000', 'vis_data')
    os.makedirs(folder)
    with open(osp.join(folder, 'scalars.json'), 'w') as file:
        for record in records:
            file.write(json.dumps(record) + '\n')


def fake_demo_work_dir(root: str, methods) -> None:
    train = [dict(loss=1.0, lr=0.1, epoch=1, iter=1, step=1),
             dict(loss=0.5, lr=0.05, epoch=1, iter=2, step=2)]
    finetune = train + [{'accuracy/top1': 20.0, 'step': 1}]
    seed_dir = osp.join('finetune', f'seed{run_demo.SEEDS[0]}')
    write_run(osp.join(root, 'random_init', seed_dir), finetune)
    for method in methods:
        work_dir = osp.join(root, method.work_dir_name)
        write_run(work_dir, train)
        write_run(osp.join(work_dir, seed_dir), finetune)
        for prefix in method.extra_rows.values():
            write_run(osp.join(work_dir, prefix.rstrip('.'), seed_dir),
                      finetune)
    seg = [dict(loss=1.0, lr=0.1, iter=10, step=10), dict(mIoU=9.0, step=10)]
    for name in ('random_init', 'moma_mae-to-moco'):
        write_run(osp.join(root, 'transfer', name), seg)


def test_write_plots_covers_every_run(tmp_path, monkeypatch):
    monkeypatch.setattr(run_demo, 'WITH_FINETUNE', True)
    root = str(tmp_path)
    fake_demo_work_dir(root, run_demo.METHODS)
    written = run_demo.write_plots(root, run_demo.METHODS, True)
    for stage in ('pretrain', 'finetune', 'transfer'):
        assert f'curves_{stage}.png' in written
        with open(osp.join(root, f'curves_{stage}.png'), 'rb') as file:
            assert file.read(8) == PNG_MAGIC
    for method in run_demo.METHODS:
        path = osp.join(root, method.work_dir_name, 'curves.png')
        with open(path, 'rb') as file:
            assert file.read(8) == PNG_MAGIC


def test_write_plots_names_a_run_without_logs(tmp_path):
    root = str(tmp_path)
    fake_demo_work_dir(root, run_demo.METHODS[:1])
    with pytest.raises(FileNotFoundError, match='scalars.json under'):
        run_demo.write_plots(root, run_demo.METHODS[:2], False)


def test_write_plots_without_the_finetune_column(tmp_path):
    """The default demo has no fine-tune runs, and draws no figure of
    them."""
    assert run_demo.WITH_FINETUNE is False
    root = str(tmp_path)
    fake_demo_work_dir(root, run_demo.METHODS)
    written = run_demo.write_plots(root, run_demo.METHODS, True)
    assert 'curves_finetune.png' not in written
    assert not osp.exists(osp.join(root, 'curves_finetune.png'))
    assert {'curves_pretrain.png', 'curves_transfer.png'} <= set(written)
