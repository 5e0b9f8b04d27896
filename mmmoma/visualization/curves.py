"""Training curves from MMEngine's scalar logs.

MMEngine's ``LocalVisBackend`` writes ``WORK_DIR/<timestamp>/vis_data/
scalars.json``: one JSON record per line. Training records (one per
``LoggerHook`` interval) carry ``iter`` (and ``epoch`` in epoch-based runs)
with the losses, ``lr``, the optimizer ``momentum``, and what the hooks put
into the message hub under ``train/`` (``teacher_momentum``: the EMA hooks;
``kappa_<feature>``: ``ConcentrationMonitorHook``). Evaluation records have
only ``step``: the epoch (epoch-based runs) or iteration; ``KNNEvalHook``
writes ``knn/top1``, the validation loop ``accuracy/top1``, ``mIoU``...

:func:`read_run` collects each key's (x, value) series; :func:`plot_runs`
draws one axis per key, every run overlaid in its own colour.
"""
import glob
import json
import os.path as osp
import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

#: (name, pattern) of the curve families, in plotting order; a key is in the
#: first family whose pattern it matches.
CURVE_FAMILIES: Tuple[Tuple[str, str], ...] = (
    ('loss', r'^loss'),
    ('learning rate', r'(^|_)lr$'),
    ('momentum', r'momentum'),
    ('concentration κ', r'^kappa'),
    ('kNN', r'^knn/'),
    ('validation', r'^(accuracy|mIoU|mAcc|aAcc|single-label)'),
)
#: bookkeeping keys that are never plotted
BOOKKEEPING_KEYS = ('step', 'iter', 'epoch', 'time', 'data_time', 'memory')


@dataclass
class Series:
    """One key of one run.

    Attributes:
        key (str): the logged name, e.g. ``loss`` or ``knn/top1``.
        unit (str): the x axis, ``'iteration'`` or ``'epoch'``.
        x (list[float]): iterations / epochs.
        y (list[float]): the values.
    """
    key: str
    unit: str
    x: List[float] = field(default_factory=list)
    y: List[float] = field(default_factory=list)


@dataclass
class Run:
    """The curves of one work dir.

    Attributes:
        name (str): label in the legend (the work dir's name).
        series (dict[str, Series]): key -> its curve.
    """
    name: str
    series: Dict[str, Series]


def scalar_files(work_dir: str) -> List[str]:
    """``WORK_DIR/*/vis_data/scalars.json``, oldest first (a resumed run
    has one per start)."""
    return sorted(
        glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')))


def read_records(work_dir: str) -> List[dict]:
    """Every record of a work dir's ``scalars.json`` files, in logging
    order (:func:`scalar_files`); empty if it has none."""
    records = []
    for path in scalar_files(work_dir):
        with open(path) as file:
            records += [json.loads(line) for line in file if line.strip()]
    return records


def curve_family(key: str) -> Optional[str]:
    """The family (:data:`CURVE_FAMILIES`) of a logged key; None: not
    plotted."""
    if key in BOOKKEEPING_KEYS:
        return None
    for family, pattern in CURVE_FAMILIES:
        if re.search(pattern, key):
            return family
    return None


def read_run(work_dir: str, name: Optional[str] = None) -> Run:
    """Read every plotted key of a work dir's ``scalars.json`` files.

    Training records are placed at their ``iter``; evaluation records (no
    ``iter``) at their ``step``, an epoch when the run's training records
    carry ``epoch``, else an iteration. When a resumed run logs a step
    again, the later value wins.

    Args:
        work_dir (str): MMEngine work dir.
        name (str, optional): the run's label; defaults to the work dir's
            base name.

    Returns:
        Run: its series, keys in first-logged order.

    Raises:
        FileNotFoundError: if the work dir has no ``scalars.json``.
    """
    if not scalar_files(work_dir):
        raise FileNotFoundError(
            f'no */vis_data/scalars.json under {work_dir} (a work dir of '
            "tools/train.py with MMEngine's LocalVisBackend)")
    records = read_records(work_dir)
    epoch_based = any('epoch' in record for record in records
                      if 'iter' in record)
    points: Dict[str, Dict[float, float]] = {}
    units: Dict[str, str] = {}
    for record in records:
        if 'iter' in record:
            x, unit = record['iter'], 'iteration'
        else:
            x = record['step']
            unit = 'epoch' if epoch_based else 'iteration'
        for key, value in record.items():
            if curve_family(key) is None or not isinstance(
                    value, (int, float)):
                continue
            points.setdefault(key, {})[float(x)] = float(value)
            units.setdefault(key, unit)
    series = {
        key: Series(key, units[key], sorted(values), [
            values[x] for x in sorted(values)
        ])
        for key, values in points.items()
    }
    return Run(name or osp.basename(osp.normpath(work_dir)), series)


def ordered_keys(runs: Sequence[Run]) -> List[str]:
    """Every key of the runs, by family (:data:`CURVE_FAMILIES`), then
    name."""
    keys = {key for run in runs for key in run.series}
    families = [family for family, _ in CURVE_FAMILIES]
    return sorted(keys, key=lambda key: (families.index(curve_family(key)),
                                         key))


def plot_runs(runs: Sequence[Run], out_file: str, title: str = '',
              columns: int = 3):
    """One axis per key, every run overlaid; saved as PNG.

    Args:
        runs (Sequence[Run]): from :func:`read_run`.
        out_file (str): PNG path.
        title (str): figure title.
        columns (int): axes per row.

    Returns:
        matplotlib.figure.Figure: the (closed) figure: its axes carry the
        keys as titles and y labels, the unit as x label, one line per run
        labelled with the run's name.
    """
    import matplotlib
    matplotlib.use('Agg')
    from matplotlib import pyplot as plt
    keys = ordered_keys(runs)
    if not keys:
        raise ValueError('the runs logged nothing to plot (losses, lr, '
                         'momentum, kappa, knn/..., validation metrics)')
    columns = min(columns, len(keys))
    rows = -(-len(keys) // columns)
    fig, axes = plt.subplots(rows, columns,
                             figsize=(4.2 * columns, 3.0 * rows + 0.6),
                             squeeze=False)
    colours = plt.rcParams['axes.prop_cycle'].by_key()['color']
    for index, key in enumerate(keys):
        axis = axes[index // columns][index % columns]
        units = set()
        for number, run in enumerate(runs):
            series = run.series.get(key)
            if series is None:
                continue
            units.add(series.unit)
            axis.plot(series.x, series.y,
                      marker='o' if len(series.x) < 12 else None,
                      markersize=3, label=run.name,
                      color=colours[number % len(colours)])
        axis.set_title(f'{key} ({curve_family(key)})', fontsize=9)
        axis.set_xlabel(' / '.join(sorted(units)), fontsize=8)
        axis.set_ylabel(key, fontsize=8)
        axis.tick_params(labelsize=7)
        axis.grid(alpha=0.3)
        if len(runs) > 1:
            axis.legend(fontsize=6)
    for index in range(len(keys), rows * columns):
        axes[index // columns][index % columns].axis('off')
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(out_file, dpi=100)
    plt.close(fig)
    return fig


__all__ = [
    'CURVE_FAMILIES', 'Series', 'Run', 'scalar_files', 'read_records',
    'curve_family',
    'read_run', 'ordered_keys', 'plot_runs'
]
