"""The whole demo pipeline at ``--budget smoke``: every row of the table
present with finite mean ± std, the "beats random init" column computed,
the Transfer table and the SdAE collapse metric logged. The margins are
the demo's to measure, not this test's."""
import json
import math
import os
import os.path as osp
import re

import pytest

from .test_seg_demo import run_demo
from .utils import python, run

CELL = re.compile(r'^(-?\d+\.\d) ± (\d+\.\d)$')


@pytest.fixture(scope='module')
def smoke_demo(tmp_path_factory):
    root = tmp_path_factory.mktemp('demo')
    env = dict(MMMOMA_DEMO_CACHE=str(root / 'cache'))
    proc = run([python(), 'tools/run_demo.py', '--budget', 'smoke',
                '--work-dir', str(root / 'demo')], env=env, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return str(root / 'demo'), proc.stdout


def table_rows(text):
    """The first markdown table of results.md as lists of cells."""
    rows = []
    for line in text.splitlines():
        if line.startswith('|---'):
            continue
        if line.startswith('|'):
            rows.append([cell.strip() for cell in line.strip('|').split('|')])
        elif rows:
            break
    return rows


def test_smoke_demo_has_every_row_with_finite_mean_and_std(smoke_demo):
    work_dir, _ = smoke_demo
    with open(osp.join(work_dir, 'results.md')) as f:
        text = f.read()
    header, *rows = table_rows(text)
    assert header == ['representation', 'pre-training budget',
                      'kNN top-1 (%)', 'linear top-1 (%)',
                      'beats random init']
    expected = ['raw pixels', run_demo.RANDOM_INIT_NAME]
    for method in run_demo.METHODS:
        expected += list(method.row_dirs(work_dir))
    assert [row[0] for row in rows] == expected
    for row in rows:
        for cell in row[2:4]:
            match = CELL.match(cell)
            assert match, (row[0], cell)
            assert all(math.isfinite(float(v)) for v in match.groups())
        if row[0] == run_demo.RANDOM_INIT_NAME:
            assert row[4] == '—'
        else:
            assert row[4] in ('no', 'kNN', 'linear', 'kNN, linear'), row
    assert 'Transfer' in text and 'UperNet mIoU' in text


def test_smoke_demo_scores_are_per_seed_and_beats_is_recomputable(
        smoke_demo):
    """Each row's frozen_eval.json holds one score per seed; the table's
    mean ± std and its "beats" cell follow from them."""
    work_dir, _ = smoke_demo
    random_init = json.load(
        open(osp.join(work_dir, 'random_init', 'frozen_eval.json')))
    # the random-init row draws a new network per seed
    assert random_init['seeds'] == run_demo.SEEDS
    assert len(set(random_init['knn'] + random_init['linear'])) > 1
    mae_dir = osp.join(work_dir, run_demo.METHODS[0].work_dir_name)
    mae = json.load(open(osp.join(mae_dir, 'frozen_eval.json')))
    assert len(mae['knn']) == len(mae['linear']) == len(run_demo.SEEDS)
    assert mae['labels_per_class'] == 5
    from mmmoma.evaluation.linear_probe import beats, format_mean_std
    table = run_demo.format_table([
        dict(name=run_demo.RANDOM_INIT_NAME, budget='—',
             scores=dict(knn=random_init['knn'],
                         linear=random_init['linear'])),
        dict(name='MAE', budget='—',
             scores=dict(knn=mae['knn'], linear=mae['linear']))])
    last = table.splitlines()[-1]
    assert format_mean_std(mae['knn']) in last
    won = [name for name, key in (('kNN', 'knn'), ('linear', 'linear'))
           if beats(mae[key], random_init[key])]
    assert last.endswith(f'| {", ".join(won) if won else "no"} |')


def test_smoke_demo_logs_the_sdae_collapse_metric(smoke_demo):
    work_dir, _ = smoke_demo
    from mmmoma.visualization.curves import read_records
    sdae = next(m for m in run_demo.METHODS if m.name.startswith('SdAE'))
    values = [r['target_token_cosine']
              for r in read_records(osp.join(work_dir, sdae.work_dir_name))
              if 'target_token_cosine' in r]
    assert values and all(-1.0 <= v <= 1.0 for v in values)


def test_smoke_demo_caches_nothing_and_says_where_things_are(smoke_demo):
    work_dir, out = smoke_demo
    assert not osp.exists(osp.join(osp.dirname(work_dir), 'cache'))
    assert 'results.md' in out
    assert os.path.isfile(osp.join(work_dir, 'curves_pretrain.png'))
