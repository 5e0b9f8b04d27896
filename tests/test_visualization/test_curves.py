"""Reading MMEngine scalar logs into curves."""
import json

import pytest

from mmmoma.visualization.curves import (curve_family, ordered_keys, plot_runs,
                                         read_run)


def write_scalars(work_dir, timestamp, records):
    folder = work_dir / timestamp / 'vis_data'
    folder.mkdir(parents=True)
    with open(folder / 'scalars.json', 'w') as file:
        for record in records:
            file.write(json.dumps(record) + '\n')


@pytest.mark.parametrize('key,family', [
    ('loss', 'loss'), ('loss_patch', 'loss'), ('lr', 'learning rate'),
    ('base_lr', 'learning rate'), ('momentum', 'momentum'),
    ('teacher_momentum', 'momentum'), ('kappa_rep', 'concentration κ'),
    ('knn/top1', 'kNN'), ('accuracy/top1', 'validation'),
    ('mIoU', 'validation'), ('time', None), ('iter', None),
    ('teacher_updates', None), ('memory', None)])
def test_curve_family(key, family):
    assert curve_family(key) == family


def test_read_run_units_resume_and_order(tmp_path):
    run_dir = tmp_path / 'run'
    write_scalars(run_dir, '20260101_000000', [
        dict(lr=0.1, loss=2.0, loss_x=1.0, time=0.3, epoch=1, iter=2,
             step=2),
        dict(lr=0.2, loss=1.5, loss_x=0.9, epoch=1, iter=4, step=4),
        {'knn/top1': 30.0, 'step': 1},
    ])
    # resumed from iteration 2: iteration 4 is logged again, then 6
    write_scalars(run_dir, '20260101_010000', [
        dict(lr=0.25, loss=1.4, loss_x=0.8, epoch=1, iter=4, step=4),
        dict(lr=0.3, loss=1.0, loss_x=0.5, epoch=2, iter=6, step=6),
        {'knn/top1': 40.0, 'step': 2},
    ])
    run = read_run(str(run_dir))
    assert run.name == 'run'
    assert run.series['loss'].x == [2.0, 4.0, 6.0]
    assert run.series['loss'].y == [2.0, 1.4, 1.0]  # the later value wins
    assert run.series['loss'].unit == 'iteration'
    assert run.series['knn/top1'].x == [1.0, 2.0]
    assert run.series['knn/top1'].unit == 'epoch'
    assert 'time' not in run.series and 'epoch' not in run.series
    assert ordered_keys([run]) == ['loss', 'loss_x', 'lr', 'knn/top1']


def test_iteration_based_run_puts_evaluations_at_iterations(tmp_path):
    write_scalars(tmp_path / 'seg', 't', [
        dict(loss=1.0, lr=0.1, iter=10, step=10),
        dict(mIoU=12.5, step=20)])
    run = read_run(str(tmp_path / 'seg'), name='segmentation')
    assert run.name == 'segmentation'
    assert run.series['mIoU'].unit == 'iteration'
    assert run.series['mIoU'].x == [20.0]


def test_missing_logs_and_empty_runs_raise(tmp_path):
    with pytest.raises(FileNotFoundError, match='scalars.json under'):
        read_run(str(tmp_path))
    write_scalars(tmp_path / 'empty', 't', [dict(time=1.0, iter=1, step=1)])
    with pytest.raises(ValueError, match='logged nothing to plot'):
        plot_runs([read_run(str(tmp_path / 'empty'))],
                  str(tmp_path / 'x.png'))
