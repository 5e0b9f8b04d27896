"""The main job of ``make demo``: pre-train on the digit scenes, evaluate.

For every pre-training method: train its demo config with tools/train.py,
evaluate the backbone with weighted kNN (tools/knn_eval.py) and with the one
fixed fine-tuning recipe (configs/demo/vit-tiny-p4_ft-*.py), and print one
table, next to raw pixels and a randomly initialised ViT. The table is also
written to ``<work-dir>/results.md``. Each step runs the real command-line
tool in a subprocess, as a user would.

A second, "Transfer" table: UperNet segmentation of the 64 px digit scenes
(configs/demo/upernet_*digit-scenes-seg.py, mIoU of mmseg's IoUMetric),
fine-tuned from a random initialisation and from the demo MOMA student
(MAE→MoCo row's final checkpoint, through
tools/model_converters/pretrain_to_transfer.py). These runs share the job
slots with the rest.

Independent steps run side by side: ``--jobs`` subprocesses at a time
(default 2), each with ``cpu_count // jobs`` intra-op threads
(``OMP_NUM_THREADS``). The tiny demo models use two threads poorly, so two
one-thread jobs finish sooner than one two-thread job after another. A
method waits for the methods whose checkpoints it needs (teachers,
initialisations). Every subprocess is seeded by its config, and its thread
count depends only on ``--jobs``, so the table does not depend on the order
in which jobs happen to run.

Usage: python tools/run_demo.py [--work-dir work_dirs/demo] [--only NAME ...]
                                [--jobs N]
"""
import argparse
import json
import os
import os.path as osp
import subprocess
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DATA_ROOT = 'data/digit_scenes'
SEG_DATA_ROOT = 'data/digit_scenes_seg'
FINETUNE_CONFIG = 'configs/demo/vit-tiny-p4_ft-1xb64-10e_digit-scenes.py'
SEG_CONFIG = 'configs/demo/upernet_vit-tiny-p4_1xb8-120it_digit-scenes-seg.py'
SEG_IMG_SIZE = 64


@dataclass
class DemoMethod:
    """One pre-training row of the demo table.

    Attributes:
        name: row label.
        config: pre-training config (configs/demo/...).
        teachers: config field -> name of an earlier method whose final
            checkpoint fills it (for distillation methods: teacher
            checkpoints, and the student's init checkpoint).
        work_dir: sub-directory of the demo work dir; defaults to the first
            word of ``name``, lower-cased.
        extra_rows: further rows from the same checkpoint: row label ->
            key prefix of the network to evaluate instead of the student
            ``backbone.`` (e.g. ``'teacher.'`` for an EMA teacher).
    """
    name: str
    config: str
    teachers: Dict[str, str] = field(default_factory=dict)
    work_dir: Optional[str] = None
    extra_rows: Dict[str, str] = field(default_factory=dict)

    @property
    def work_dir_name(self) -> str:
        return self.work_dir or self.name.split(' ')[0].lower()

    def row_dirs(self, work_root: str) -> Dict[str, Tuple[str, str]]:
        """Row label -> (key prefix of the evaluated network, the folder of
        its kNN / fine-tune runs): the student in the method's work dir,
        each ``extra_rows`` network in a sub-folder named after it."""
        work_dir = osp.join(work_root, self.work_dir_name)
        rows = {self.name: ('backbone.', work_dir)}
        for row_name, prefix in self.extra_rows.items():
            rows[row_name] = (prefix, osp.join(work_dir, prefix.rstrip('.')))
        return rows


MAE_NAME = 'MAE (mmpretrain)'
MOCO_NAME = 'MoCo v3 (mmpretrain)'


# Later methods append their rows here (teachers must come first).
METHODS: List[DemoMethod] = [
    DemoMethod(MAE_NAME,
               'configs/demo/mae_vit-tiny-p4_1xb128-40e_digit-scenes.py'),
    DemoMethod(MOCO_NAME,
               'configs/demo/mocov3_vit-tiny-p4_1xb128-20e_digit-scenes.py'),
    DemoMethod(
        'MOMA MoCo→MAE',
        'configs/demo/moma-mocov3-to-mae_vit-tiny-p4_1xb128-8e_digit-scenes'
        '.py',
        teachers={
            'model.teachers.moco.teacher.checkpoint': MOCO_NAME,
            'model.backbone.init_cfg.checkpoint': MAE_NAME,
        },
        work_dir='moma_moco-to-mae'),
    DemoMethod(
        'MOMA MAE→MoCo',
        'configs/demo/moma-mae-to-mocov3_vit-tiny-p4_1xb128-8e_digit-scenes'
        '.py',
        teachers={
            'model.teachers.mae.teacher.checkpoint': MAE_NAME,
            'model.backbone.init_cfg.checkpoint': MOCO_NAME,
        },
        work_dir='moma_mae-to-moco'),
    DemoMethod(
        'MOMA multi-teacher',
        'configs/demo/moma-multi-teacher_vit-tiny-p4_1xb128-4e_digit-scenes'
        '.py',
        teachers={
            'model.teachers.mae.teacher.checkpoint': MAE_NAME,
            'model.teachers.moco.teacher.checkpoint': MOCO_NAME,
        },
        work_dir='moma_multi-teacher'),
    DemoMethod(
        'SdAE student',
        'configs/demo/sdae_vit-tiny-p4_1xb128-40e_digit-scenes.py',
        extra_rows={'SdAE EMA teacher': 'teacher.'}),
    DemoMethod(
        'MimCo student',
        'configs/demo/mimco_vit-tiny-p4_1xb128-10e_digit-scenes.py',
        teachers={'model.teacher.checkpoint': MOCO_NAME}),
    DemoMethod(
        'M-MoCo n=8',
        'configs/demo/mmoco_vit-tiny-p4_1xb128-8e_digit-scenes.py',
        work_dir='mmoco_n8'),
    DemoMethod(
        'M-MoCo n=1 (baseline)',
        'configs/demo/mmoco-n1_vit-tiny-p4_1xb128-8e_digit-scenes.py',
        work_dir='mmoco_n1'),
]


class JobSlots:
    """At most ``jobs`` subprocesses at a time, ``threads`` threads each."""

    def __init__(self, jobs: int) -> None:
        self.jobs = jobs
        self.threads = max(1, (os.cpu_count() or 1) // jobs)
        self._slots = threading.Semaphore(jobs)
        self._print_lock = threading.Lock()

    def run(self, cmd: List[str], log_path: str) -> float:
        """Run a tool in a free slot, log its output to a file; return its
        wall seconds (from start to end, not counting the wait)."""
        os.makedirs(osp.dirname(log_path), exist_ok=True)
        env = dict(os.environ, OMP_NUM_THREADS=str(self.threads))
        with self._slots:
            self.print(f'$ {" ".join(cmd)}')
            start = time.time()
            with open(log_path, 'w') as log:
                proc = subprocess.run(
                    cmd,
                    cwd=REPO_ROOT,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT)
            seconds = time.time() - start
        if proc.returncode != 0:
            with open(log_path) as log:
                tail = log.read()[-3000:]
            raise RuntimeError(f'command failed ({proc.returncode}): '
                               f'{" ".join(cmd)}\nlog {log_path}:\n{tail}')
        return seconds

    def print(self, text: str) -> None:
        with self._print_lock:
            print(text, flush=True)


SLOTS = JobSlots(jobs=1)  # replaced in main() by --jobs


def run(cmd: List[str], log_path: str) -> float:
    """Run a tool (in a job slot), log its output; return wall seconds."""
    return SLOTS.run(cmd, log_path)


def last_checkpoint(work_dir: str) -> str:
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        return f.read().strip()


def teacher_checkpoint(name: str, checkpoints: Dict[str, 'Future[str]'],
                       work_root: str) -> str:
    """Final checkpoint of the earlier method ``name``: from this run (waits
    for it to finish pre-training), or (with ``--only``) from a previous run
    in the same work dir."""
    if name in checkpoints:
        return checkpoints[name].result()
    method = next((m for m in METHODS if m.name == name), None)
    if method is None:
        raise KeyError(f'unknown demo method {name!r}')
    work_dir = osp.join(work_root, method.work_dir_name)
    if not osp.exists(osp.join(work_dir, 'last_checkpoint')):
        raise RuntimeError(
            f'{name!r} is needed as a teacher / initialisation but has no '
            f'checkpoint in {work_dir}; run it first (--only {name!r})')
    return last_checkpoint(work_dir)


def final_scalars(work_dir: str, key: str) -> float:
    """The last logged value of ``key`` in MMEngine's scalars.json."""
    from mmmoma.visualization.curves import read_records
    value = None
    for record in read_records(work_dir):
        if key in record:
            value = record[key]
    if value is None:
        raise RuntimeError(f'no {key!r} logged under {work_dir}')
    return float(value)


def read_json(path: str) -> dict:
    with open(path) as f:
        return json.load(f)


def knn(config: str, checkpoint: Optional[str], work_dir: str,
        extra: List[str] = ()) -> float:
    out = osp.join(work_dir, 'knn.json')
    cmd = [sys.executable, 'tools/knn_eval.py', config]
    cmd += [checkpoint] if checkpoint else []
    cmd += list(extra) + ['--out', out]
    run(cmd, osp.join(work_dir, 'knn.log'))
    return float(read_json(out)['top1'])


def finetune(checkpoint: Optional[str], work_dir: str,
             prefix: str = 'backbone.') -> float:
    init = ([f'model.backbone.init_cfg.checkpoint={checkpoint}',
             f'model.backbone.init_cfg.prefix={prefix}']
            if checkpoint else ['model.backbone.init_cfg=None'])
    run([sys.executable, 'tools/train.py', FINETUNE_CONFIG, '--work-dir',
         work_dir, '--cfg-options', *init],
        osp.join(work_dir, 'finetune.log'))
    return final_scalars(work_dir, 'accuracy/top1')


def pretrain_budget(work_dir: str, seconds: float) -> str:
    checkpoint = last_checkpoint(work_dir)
    import torch  # noqa: delayed: only needed here

    import mmmoma  # noqa: F401  (safe-loading fixes for the checkpoint)
    meta = torch.load(checkpoint, map_location='cpu')['meta']
    return f'{meta["epoch"]} ep / {meta["iter"]} it / {seconds:.0f} s'


def format_table(rows: List[dict]) -> str:
    header = ('| representation | pre-training budget | kNN top-1 (%) | '
              'fine-tune top-1 (%) |')
    lines = [header, '|---|---|---|---|']
    for row in rows:
        def fmt(value):
            return '—' if value is None else f'{value:.1f}'
        lines.append(f'| {row["name"]} | {row["budget"]} | '
                     f'{fmt(row["knn"])} | {fmt(row["finetune"])} |')
    return '\n'.join(lines)


def evaluate_method(method: DemoMethod, work_root: str,
                    checkpoints: Dict[str, 'Future[str]']) -> List[dict]:
    """Pre-train one method (after its teachers), then evaluate its rows.

    Sets ``checkpoints[method.name]`` as soon as the checkpoint exists, so
    methods that need it can start while this one is being evaluated.
    """
    own_checkpoint = checkpoints[method.name]
    try:
        work_dir = osp.join(work_root, method.work_dir_name)
        os.makedirs(work_dir, exist_ok=True)
        options = [
            f'{key}={teacher_checkpoint(teacher, checkpoints, work_root)}'
            for key, teacher in method.teachers.items()
        ]
        cmd = [sys.executable, 'tools/train.py', method.config,
               '--work-dir', work_dir]
        cmd += ['--cfg-options', *options] if options else []
        seconds = run(cmd, osp.join(work_dir, 'pretrain.log'))
        checkpoint = last_checkpoint(work_dir)
        own_checkpoint.set_result(checkpoint)
    except BaseException as error:  # waiting students fail too
        own_checkpoint.set_exception(error)
        raise
    budget = pretrain_budget(work_dir, seconds)
    # the same options: a distillation model builds its teachers
    cfg_options = ['--cfg-options', *options] if options else []
    rows = []
    for row_name, (prefix, eval_dir) in method.row_dirs(work_root).items():
        os.makedirs(eval_dir, exist_ok=True)
        rows.append(dict(
            name=row_name,
            budget=budget,
            knn=knn(method.config, checkpoint, eval_dir,
                    ['--prefix', prefix, *cfg_options]),
            finetune=finetune(checkpoint, osp.join(eval_dir, 'finetune'),
                              prefix)))
        SLOTS.print(format_table(rows[-1:]).splitlines()[-1])
    return rows


#: the pre-trained row of the Transfer table: this method's student
TRANSFER_METHOD = 'MOMA MAE→MoCo'


def transfer_backbone(checkpoint: str, out_dir: str) -> str:
    """The mmseg backbone file (``SEG_IMG_SIZE`` px) of a pre-training
    checkpoint, written by tools/model_converters/pretrain_to_transfer.py."""
    os.makedirs(out_dir, exist_ok=True)
    run([sys.executable, 'tools/model_converters/pretrain_to_transfer.py',
         checkpoint, out_dir, '--seg-img-size', str(SEG_IMG_SIZE)],
        osp.join(out_dir, 'convert.log'))
    path = osp.join(out_dir, f'mmseg_backbone_{SEG_IMG_SIZE}px.pth')
    if not osp.isfile(path):
        raise RuntimeError(f'the converter wrote no {path}')
    return path


def segment(backbone: Optional[str], work_dir: str,
            cfg_options: List[str] = ()) -> dict:
    """Fine-tune the demo UperNet (SEG_CONFIG) on the segmentation scenes.

    Args:
        backbone: mmseg backbone file (``transfer_backbone``), loaded by
            StrictPretrained; None for a random initialisation.
        work_dir: the run's work dir (its log: ``segment.log``).
        cfg_options: further ``--cfg-options`` (tests shrink the run).

    Returns:
        dict: ``miou``, the val mIoU (%) that mmseg's IoUMetric logged at
        the end of the run, and ``seconds``, the run's wall time.
    """
    init = ([f'model.backbone.init_cfg.checkpoint={backbone}']
            if backbone else ['model.backbone.init_cfg=None'])
    seconds = run([sys.executable, 'tools/train.py', SEG_CONFIG,
                   '--work-dir', work_dir, '--cfg-options', *init,
                   *cfg_options], osp.join(work_dir, 'segment.log'))
    return dict(miou=final_scalars(work_dir, 'mIoU'), seconds=seconds)


def random_transfer_row(work_root: str) -> dict:
    """UperNet on a randomly initialised ViT."""
    result = segment(None, osp.join(work_root, 'transfer', 'random_init'))
    row = dict(name='random-init ViT', **result)
    SLOTS.print(format_transfer_table([row]).splitlines()[-1])
    return row


def pretrained_transfer_row(work_root: str,
                            checkpoints: Dict[str, 'Future[str]']) -> dict:
    """UperNet on the TRANSFER_METHOD student (waits for its checkpoint)."""
    checkpoint = teacher_checkpoint(TRANSFER_METHOD, checkpoints, work_root)
    work_dir = osp.join(work_root, 'transfer', 'moma_mae-to-moco')
    result = segment(transfer_backbone(checkpoint, work_dir), work_dir)
    row = dict(name=f'{TRANSFER_METHOD} student', **result)
    SLOTS.print(format_transfer_table([row]).splitlines()[-1])
    return row


def format_transfer_table(rows: List[dict]) -> str:
    lines = ['| backbone initialisation | UperNet mIoU (%) | fine-tune s |',
             '|---|---|---|']
    lines += [f'| {row["name"]} | {row["miou"]:.1f} | {row["seconds"]:.0f} |'
              for row in rows]
    return '\n'.join(lines)


def baseline_rows(work_root: str) -> List[dict]:
    """Raw pixels (kNN only) and a randomly initialised ViT."""
    pixels_dir = osp.join(work_root, 'raw_pixels')
    os.makedirs(pixels_dir, exist_ok=True)
    rows = [dict(name='raw pixels', budget='—', finetune=None,
                 knn=knn(FINETUNE_CONFIG, None, pixels_dir,
                         ['--raw-pixels']))]
    random_dir = osp.join(work_root, 'random_init')
    os.makedirs(random_dir, exist_ok=True)
    rows.append(dict(
        name='random-init ViT', budget='—',
        knn=knn(FINETUNE_CONFIG, None, random_dir,
                ['--cfg-options', 'model.backbone.init_cfg=None']),
        finetune=finetune(None, osp.join(random_dir, 'finetune'))))
    return rows


def masking_pictures(work_root: str, methods: List[DemoMethod]) -> None:
    """One masking picture per pre-training config (its own pipeline and
    masking code on 4 digit scenes), by
    tools/analysis/visualize_masking.py, into ``<work-dir>/masks/``."""
    out_dir = osp.join(work_root, 'masks')
    run([sys.executable, 'tools/analysis/visualize_masking.py',
         *[method.config for method in methods], '--images', '4', '--out',
         out_dir], osp.join(out_dir, 'visualize.log'))


def write_plots(work_root: str, methods: List[DemoMethod],
                with_transfer: bool) -> List[str]:
    """Training curves (tools/analysis/plot_curves.py's library): one figure
    per pre-training run in its work dir, and the runs of each stage
    overlaid in ``<work-dir>/curves_{pretrain,finetune,transfer}.png``.

    Returns:
        list[str]: what was written, relative to the work dir.
    """
    from mmmoma.visualization.curves import plot_runs, read_run
    written = []
    pretrain_runs = []
    for method in methods:
        work_dir = osp.join(work_root, method.work_dir_name)
        pretrain_run = read_run(work_dir, method.name)
        plot_runs([pretrain_run], osp.join(work_dir, 'curves.png'),
                  f'{method.name}: {osp.basename(method.config)}')
        pretrain_runs.append(pretrain_run)
    written.append('<method>/curves.png')
    stages = {'pretrain': pretrain_runs}
    finetune_dirs = {'random-init ViT': osp.join(work_root, 'random_init')}
    for method in methods:
        finetune_dirs.update({
            row_name: eval_dir
            for row_name, (_, eval_dir) in method.row_dirs(work_root).items()
        })
    stages['finetune'] = [
        read_run(osp.join(work_dir, 'finetune'), name)
        for name, work_dir in finetune_dirs.items()
    ]
    if with_transfer:
        stages['transfer'] = [
            read_run(osp.join(work_root, 'transfer', 'random_init'),
                     'random-init ViT'),
            read_run(osp.join(work_root, 'transfer', 'moma_mae-to-moco'),
                     f'{TRANSFER_METHOD} student'),
        ]
    for stage, runs in stages.items():
        name = f'curves_{stage}.png'
        plot_runs(runs, osp.join(work_root, name), f'demo: {stage} runs')
        written.append(name)
    return written + ['masks/<config>.png (masking pictures)']


def main() -> None:
    global SLOTS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--work-dir', default='work_dirs/demo')
    parser.add_argument('--only', nargs='+', help='method names to run')
    parser.add_argument(
        '--jobs',
        type=int,
        default=2,
        help='subprocesses run side by side (default 2), each with '
        'cpu_count // jobs threads')
    args = parser.parse_args()
    if args.jobs < 1:
        parser.error(f'--jobs must be >= 1, got {args.jobs}')
    SLOTS = JobSlots(args.jobs)
    work_root = osp.join(REPO_ROOT, args.work_dir)
    os.makedirs(work_root, exist_ok=True)
    started = time.time()

    # the Transfer table runs with the method whose student it fine-tunes
    with_transfer = not args.only or TRANSFER_METHOD in args.only
    data_cmd = [
        sys.executable, 'tools/dataset_converters/make_digit_scenes.py',
        '--out', DATA_ROOT
    ]
    if with_transfer:
        data_cmd += ['--seg-out', SEG_DATA_ROOT,
                     '--seg-img-size', str(SEG_IMG_SIZE)]
    run(data_cmd, osp.join(work_root, 'data.log'))

    methods = [m for m in METHODS if not args.only or m.name in args.only]
    checkpoints: Dict[str, Future] = {m.name: Future() for m in methods}
    # one thread per method chain (they mostly wait for a job slot); the
    # baselines and methods without teachers go first, the segmentation
    # runs last (they fill the slots while the others wait for teachers)
    with ThreadPoolExecutor(max_workers=len(methods) + 4) as pool:
        baselines = pool.submit(baseline_rows, work_root)
        results = [
            pool.submit(evaluate_method, method, work_root, checkpoints)
            for method in methods
        ]
        transfer = [
            pool.submit(random_transfer_row, work_root),
            pool.submit(pretrained_transfer_row, work_root, checkpoints),
        ] if with_transfer else []
        pictures = pool.submit(masking_pictures, work_root, methods)
        rows = baselines.result()
        for result in results:
            rows += result.result()
        transfer_rows = [result.result() for result in transfer]
        pictures.result()

    table = format_table(rows)
    plots = write_plots(work_root, methods, with_transfer)
    minutes = (time.time() - started) / 60
    note = (f'\nDigit scenes (32 px, 10 classes), kNN: k=20, cosine, T=0.07; '
            f'fine-tune: {osp.basename(FINETUNE_CONFIG)}. Pre-training '
            f'seconds are wall time with {SLOTS.jobs} job(s) of '
            f'{SLOTS.threads} thread(s) side by side. Total demo time: '
            f'{minutes:.1f} min.')
    if transfer_rows:
        note += (f'\n\nTransfer: UperNet segmentation of the digit scenes '
                 f'({SEG_IMG_SIZE} px, 10 digits + background), '
                 f'{osp.basename(SEG_CONFIG)}; val mIoU of mmseg\'s '
                 f'IoUMetric.\n\n' + format_transfer_table(transfer_rows))
    with open(osp.join(work_root, 'results.md'), 'w') as f:
        f.write(table + '\n' + note + '\n')
    print('\n' + table + note)
    print(f'\nTable and plots in {args.work_dir}/: results.md (these '
          'tables), ' + ', '.join(plots) + '.')


if __name__ == '__main__':
    main()
