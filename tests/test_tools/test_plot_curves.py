"""tools/analysis/plot_curves.py on a tiny real training run: M-MoCo (demo
config, tiny data) with the EMA, concentration and kNN hooks, two epochs;
the figure has one axis per logged curve, with the run's values."""
import json
import os

import pytest

from mmmoma.visualization.curves import plot_runs, read_run

from .utils import (MMOCO_DEMO, REPO_ROOT, load_tool, pretrain_overrides,
                    python, run, train_in_process)

SCRIPT = os.path.join(REPO_ROOT, 'tools', 'analysis', 'plot_curves.py')
PNG_MAGIC = b'\x89PNG\r\n\x1a\n'


@pytest.fixture(scope='module')
def trained_work_dir(tmp_path_factory, tiny_image_folder):
    root = tmp_path_factory.mktemp('curves')
    knn_loader = dict(
        batch_size=8, num_workers=0, persistent_workers=False,
        sampler=dict(type='DefaultSampler', shuffle=False),
        collate_fn=dict(type='default_collate'),
        dataset=dict(type='CustomDataset', data_root=tiny_image_folder,
                     data_prefix='train',
                     pipeline=[dict(type='LoadImageFromFile'),
                               dict(type='PackInputs')]))
    config = root / 'mmoco_curves.py'
    config.write_text(
        f'_base_ = {MMOCO_DEMO!r}\n'
        'custom_hooks = [\n'
        "    dict(type='RNGStateHook'), dict(type='TeacherEMAHook'),\n"
        "    dict(type='ConcentrationMonitorHook', interval=2),\n"
        f"    dict(type='KNNEvalHook', train_dataloader={knn_loader!r},\n"
        f'         val_dataloader={knn_loader!r}, k=3),\n'
        ']\n')
    work_dir = root / 'mmoco_run'
    train_in_process(config, work_dir,
                     pretrain_overrides(tiny_image_folder, max_epochs=2,
                                        batch_size=4), threads=1)
    return work_dir


def logged(work_dir, key):
    """(x, value) of ``key`` in the run's scalars.json, as MMEngine wrote
    it (training records at ``iter``, evaluations at ``step``)."""
    (stamp, ) = [d for d in os.listdir(work_dir)
                 if os.path.isdir(work_dir / d / 'vis_data')]
    points = []
    with open(work_dir / stamp / 'vis_data' / 'scalars.json') as file:
        for line in file:
            record = json.loads(line)
            if key in record:
                points.append((record.get('iter', record['step']),
                               record[key]))
    return points


def test_command_line_writes_the_png(trained_work_dir, tmp_path):
    out = tmp_path / 'plots' / 'curves.png'
    proc = run([python(), SCRIPT, str(trained_work_dir), '--out', str(out),
                '--title', 'tiny M-MoCo'])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert out.read_bytes()[:8] == PNG_MAGIC
    assert f'of 1 run(s) to {out}' in proc.stdout
    for key in ('loss', 'lr', 'teacher_momentum', 'knn/top1'):
        assert key in proc.stdout


def test_figure_axes_carry_the_logged_curves(trained_work_dir, tmp_path):
    runs = [read_run(str(trained_work_dir), 'n=8'),
            read_run(str(trained_work_dir), 'again')]
    figure = plot_runs(runs, str(tmp_path / 'c.png'), 'two runs')
    axes = {axis.get_title(): axis for axis in figure.axes
            if axis.get_title()}
    titles = set(axes)
    for expected in ('loss (loss)', 'lr (learning rate)',
                     'teacher_momentum (momentum)', 'knn/top1 (kNN)'):
        assert expected in titles, titles
    kappas = [t for t in titles if t.endswith('(concentration κ)')]
    assert kappas and all(t.startswith('kappa_') for t in kappas)

    loss = axes['loss (loss)']
    assert loss.get_xlabel() == 'iteration' and loss.get_ylabel() == 'loss'
    labels = [line.get_label() for line in loss.get_lines()]
    assert labels == ['n=8', 'again']
    expected = logged(trained_work_dir, 'loss')
    assert len(expected) == 8  # 2 epochs x 4 iterations, logged every one
    line = loss.get_lines()[0]
    assert list(line.get_xdata()) == [x for x, _ in expected]
    assert list(line.get_ydata()) == pytest.approx([y for _, y in expected])

    knn = axes['knn/top1 (kNN)']
    assert knn.get_xlabel() == 'epoch'
    knn_points = logged(trained_work_dir, 'knn/top1')
    assert list(knn.get_lines()[0].get_xdata()) == [1.0, 2.0]
    assert list(knn.get_lines()[0].get_ydata()) == pytest.approx(
        [y for _, y in knn_points])
    momentum = axes['teacher_momentum (momentum)'].get_lines()[0]
    assert all(0 < m <= 1 for m in momentum.get_ydata())


def test_names_must_match_the_work_dirs(trained_work_dir, capsys):
    tool = load_tool(SCRIPT)
    with pytest.raises(SystemExit) as exit_info:
        tool.main([str(trained_work_dir), '--names', 'a', 'b'])
    assert exit_info.value.code != 0
    assert '--names: 2 names for 1 work dirs' in capsys.readouterr().err
