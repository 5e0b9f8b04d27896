"""Plot training curves of one or more MMEngine work dirs, overlaid.

Reads ``WORK_DIR/*/vis_data/scalars.json`` (MMEngine's ``LocalVisBackend``)
and draws one axis per logged key: loss terms, learning rate, momentum (the
optimizer's and the EMA hooks' ``teacher_momentum``), κ
(``ConcentrationMonitorHook``: ``kappa_*``), kNN top-1 (``KNNEvalHook``:
``knn/top1``) and validation metrics; every run in its own colour. Training
values are plotted against iterations, evaluation values against their step
(the epoch in epoch-based runs). See :mod:`mmmoma.visualization.curves`.

Usage::

    python tools/analysis/plot_curves.py WORK_DIR [WORK_DIR ...] \\
        [--out curves.png] [--names NAME ...] [--title TITLE]
"""
import argparse
import os
import os.path as osp
from typing import Optional, Sequence

from mmmoma.visualization.curves import plot_runs, read_run


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Plot loss, lr, momentum, kappa and kNN curves of '
        'MMEngine work dirs, overlaid.')
    parser.add_argument('work_dirs', nargs='+', metavar='WORK_DIR')
    parser.add_argument(
        '--out',
        help='PNG to write (default: WORK_DIR/curves.png for one run, '
        'curves.png in the current folder for several)')
    parser.add_argument('--names', nargs='+',
                        help='legend labels, one per WORK_DIR (default: '
                        'the folder names)')
    parser.add_argument('--title', default='', help='figure title')
    args = parser.parse_args(argv)
    if args.names is not None and len(args.names) != len(args.work_dirs):
        parser.error(f'--names: {len(args.names)} names for '
                     f'{len(args.work_dirs)} work dirs')
    return args


def main(argv: Optional[Sequence[str]] = None) -> str:
    args = parse_args(argv)
    names = args.names or [None] * len(args.work_dirs)
    runs = [read_run(work_dir, name)
            for work_dir, name in zip(args.work_dirs, names)]
    out = args.out or (osp.join(args.work_dirs[0], 'curves.png')
                       if len(args.work_dirs) == 1 else 'curves.png')
    if osp.dirname(out):
        os.makedirs(osp.dirname(out), exist_ok=True)
    plot_runs(runs, out, args.title)
    keys = sorted({key for run in runs for key in run.series})
    print(f'plotted {", ".join(keys)} of {len(runs)} run(s) to {out}')
    return out


if __name__ == '__main__':
    main()
