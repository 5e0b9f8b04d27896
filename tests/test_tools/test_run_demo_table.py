"""run_demo's table, teacher cache and job slots (no training)."""
import os
import os.path as osp
import threading
import time

import pytest

from .test_seg_demo import run_demo


def rows(**scores):
    baseline = dict(name=run_demo.RANDOM_INIT_NAME, budget='—',
                    scores=dict(knn=[9.0, 10.0, 11.0],
                                linear=[15.0, 16.0, 17.0]))
    return [baseline] + [dict(name=name, budget='b', scores=value)
                         for name, value in scores.items()]


def test_table_reports_mean_std_and_which_protocols_beat_random_init():
    # random init: mean 10 / 16, std 1 / 1. Threshold 2 * pooled std.
    table = run_demo.format_table(rows(
        both=dict(knn=[13.0, 13.0, 13.0], linear=[19.0, 19.0, 19.0]),
        # pooled std sqrt((1 + 1) / 2) = 1: a difference of 2.0 is not > 2
        at_threshold=dict(knn=[11.0, 12.0, 13.0], linear=[17.0, 18.0, 19.0]),
        neither=dict(knn=[10.0, 11.0, 12.0], linear=[14.0, 16.0, 18.0])))
    lines = table.splitlines()
    assert lines[0] == ('| representation | pre-training budget | kNN top-1 '
                        '(%) | linear top-1 (%) | beats random init |')
    assert lines[2] == f'| {run_demo.RANDOM_INIT_NAME} | — | 10.0 ± 1.0 | ' \
        '16.0 ± 1.0 | — |'
    assert lines[3] == '| both | b | 13.0 ± 0.0 | 19.0 ± 0.0 | kNN, linear |'
    assert lines[4].endswith('| 12.0 ± 1.0 | 18.0 ± 1.0 | no |')
    assert lines[5].endswith('| 11.0 ± 1.0 | 16.0 ± 2.0 | no |')


def test_table_adds_the_finetune_column_only_with_its_scores():
    table = run_demo.format_table(rows(
        ft=dict(knn=[1.0, 2.0], linear=[1.0, 2.0], finetune=[50.0, 52.0])))
    assert 'fine-tune top-1 (%)' in table.splitlines()[0]
    assert table.splitlines()[2].split('|')[5].strip() == '—'
    assert '51.0 ± 1.4' in table.splitlines()[3]


def fake_run(work_dir, checkpoint='epoch_3.pth'):
    os.makedirs(work_dir)
    with open(osp.join(work_dir, checkpoint), 'w') as f:
        f.write('weights')
    with open(osp.join(work_dir, 'last_checkpoint'), 'w') as f:
        f.write(osp.join(work_dir, checkpoint))


def test_cache_round_trip_points_the_checkpoint_at_the_copy(
        tmp_path, monkeypatch):
    monkeypatch.setenv('MMMOMA_DEMO_CACHE', str(tmp_path / 'cache'))
    method = run_demo.METHODS[0]
    fake_run(str(tmp_path / 'run'))
    assert run_demo.restore_cached(method, 'k1', str(tmp_path / 'a')) is None
    run_demo.store_cached(method, 'k1', str(tmp_path / 'run'), 12.5)
    assert not [p for p in os.listdir(tmp_path / 'cache') if '.tmp' in p]
    restored = str(tmp_path / 'a')
    info = run_demo.restore_cached(method, 'k1', restored)
    assert info['seconds'] == 12.5 and info['key'] == 'k1'
    assert run_demo.last_checkpoint(restored) == osp.join(
        restored, 'epoch_3.pth')
    with open(run_demo.last_checkpoint(restored)) as f:
        assert f.read() == 'weights'
    # another key is a miss
    assert run_demo.restore_cached(method, 'k2', str(tmp_path / 'b')) is None


def test_cache_key_follows_the_config_its_options_and_the_data(
        tmp_path, monkeypatch):
    # a data set of its own: the demo's may not be made yet (xdist order)
    data = tmp_path / 'digit_scenes'
    data.mkdir()
    (data / 'meta.json').write_text('{"generator_version": 1}')
    monkeypatch.setattr(run_demo, 'DATA_ROOT', str(data))
    config = run_demo.METHODS[0].config
    key = run_demo.cache_key(config, [])
    assert key == run_demo.cache_key(config, [])
    assert key != run_demo.cache_key(config,
                                     ['model.backbone.mask_ratio=0.5'])
    assert key != run_demo.cache_key(run_demo.METHODS[1].config, [])
    (data / 'meta.json').write_text('{"generator_version": 2}')
    assert key != run_demo.cache_key(config, [])


def test_job_slots_serve_the_lowest_rank_first(tmp_path, monkeypatch):
    slots = run_demo.JobSlots(jobs=1)
    monkeypatch.setattr(run_demo, 'SLOTS', slots)
    order = []

    def job(rank, name):
        def body():
            run_demo.SLOTS.run(['sleep', '0.3'], str(tmp_path / name))
            order.append(name)
        run_demo.with_priority(rank, body)

    first = threading.Thread(target=job, args=(50, 'first'))
    first.start()
    time.sleep(0.1)  # 'first' holds the only slot; the others queue
    waiting = [threading.Thread(target=job, args=args)
               for args in ((9, 'low'), (1, 'high'), (5, 'mid'))]
    for thread in waiting:
        thread.start()
        time.sleep(0.02)
    for thread in [first] + waiting:
        thread.join()
    assert order == ['first', 'high', 'mid', 'low']


@pytest.mark.parametrize('seeds', [['0'], ['1', '1']])
def test_run_demo_rejects_too_few_or_repeated_seeds(seeds):
    from .utils import python, run
    proc = run([python(), 'tools/run_demo.py', '--seeds', *seeds])
    assert proc.returncode == 2
    assert '--seeds must be at least 2 distinct seeds' in proc.stderr


def test_job_slots_start_nothing_before_open_then_go_by_rank(
        tmp_path, monkeypatch):
    """Jobs that queue before open() start by rank, not by arrival."""
    slots = run_demo.JobSlots(jobs=1, start_open=False)
    monkeypatch.setattr(run_demo, 'SLOTS', slots)
    order = []

    def job(rank, name):
        def body():
            run_demo.SLOTS.run(['true'], str(tmp_path / name))
            order.append(name)
        run_demo.with_priority(rank, body)

    threads = [threading.Thread(target=job, args=args)
               for args in ((7, 'student'), (1000, 'baseline'),
                            (0, 'teacher'))]
    for thread in threads:
        thread.start()
    time.sleep(0.3)
    assert order == []  # closed
    slots.open()
    for thread in threads:
        thread.join()
    assert order == ['teacher', 'student', 'baseline']
