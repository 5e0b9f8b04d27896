"""The main job of ``make demo``: pre-train on the digit scenes, evaluate.

For every pre-training method: train its demo config with tools/train.py,
evaluate the frozen backbone with weighted kNN and a linear probe over
evaluation seeds (tools/frozen_eval.py; ``--finetune`` adds the one fixed
fine-tuning recipe, configs/demo/vit-tiny-p4_ft-*.py, per seed), and print
one table, next to raw pixels and a randomly initialised ViT: mean ± std
over the seeds and a computed "beats random init" column (difference of
means > 2 × pooled std, per protocol). The table is also written to
``<work-dir>/results.md``. Each step runs the real command-line tool in a
subprocess, as a user would.

Teachers (the MAE and MoCo v3 runs that MOMA and MimCo distil from, and
initialise from) are cached: their work dir is copied to
``$MMMOMA_DEMO_CACHE`` (default ``~/.cache/mmmoma/demo``) under a key made
of the config (as loaded, with the options given), the mmmoma source and
the data set's meta.json, and a later demo with the same key reuses it
instead of training (``--no-cache`` trains anyway).

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
                                [--jobs N] [--seeds 0 1 2] [--finetune]
                                [--no-cache] [--budget short|long|smoke]
"""
import argparse
import glob
import hashlib
import heapq
import json
import os
import os.path as osp
import shutil
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
            the encoder to evaluate instead of the student, ``'teacher'``:
            the EMA encoder the checkpoint declares (its
            ``meta['momentum_target']``, as ``pretrain_to_transfer.py
            --encoder teacher`` reads it).
        cached: whether the run is reused from the demo cache (teachers:
            built once, see :func:`cache_key`).
    """
    name: str
    config: str
    teachers: Dict[str, str] = field(default_factory=dict)
    work_dir: Optional[str] = None
    extra_rows: Dict[str, str] = field(default_factory=dict)
    cached: bool = False

    @property
    def work_dir_name(self) -> str:
        return self.work_dir or self.name.split(' ')[0].lower()

    def row_dirs(self, work_root: str) -> Dict[str, Tuple[str, str]]:
        """Row label -> (the evaluated encoder, the folder of its kNN /
        fine-tune runs): the student in the method's work dir, each
        ``extra_rows`` encoder in a sub-folder named after it."""
        work_dir = osp.join(work_root, self.work_dir_name)
        rows = {self.name: ('student', work_dir)}
        for row_name, encoder in self.extra_rows.items():
            rows[row_name] = (encoder, osp.join(work_dir, encoder))
        return rows


def encoder_prefix(checkpoint: str, encoder: str) -> str:
    """The state-dict key prefix of ``encoder`` in a training checkpoint:
    ``backbone.`` for the student, the declared EMA encoder's for
    ``'teacher'`` (:func:`mmmoma.checkpoints.transfer.encoder_prefix`)."""
    if encoder == 'student':
        return 'backbone.'
    import torch

    from mmmoma.checkpoints.transfer import encoder_prefix as declared
    return declared(torch.load(checkpoint, map_location='cpu',
                               weights_only=False), encoder)


MAE_NAME = 'MAE (mmpretrain)'
MOCO_NAME = 'MoCo v3 (mmpretrain)'


# Later methods append their rows here (teachers must come first).
METHODS: List[DemoMethod] = [
    DemoMethod(MAE_NAME,
               'configs/demo/mae_vit-tiny-p4_1xb128-100e_digit-scenes.py',
               cached=True),
    DemoMethod(MOCO_NAME,
               'configs/demo/mocov3_vit-tiny-p4_1xb128-20e_digit-scenes.py',
               cached=True),
    DemoMethod(
        'MOMA MoCo→MAE',
        'configs/demo/moma-mocov3-to-mae_vit-tiny-p4_1xb128-24e_digit-scenes'
        '.py',
        teachers={
            'model.teachers.moco.teacher.checkpoint': MOCO_NAME,
            'model.backbone.init_cfg.checkpoint': MAE_NAME,
        },
        work_dir='moma_moco-to-mae'),
    DemoMethod(
        'MOMA MAE→MoCo',
        'configs/demo/moma-mae-to-mocov3_vit-tiny-p4_1xb128-24e_digit-scenes'
        '.py',
        teachers={
            'model.teachers.mae.teacher.checkpoint': MAE_NAME,
            'model.backbone.init_cfg.checkpoint': MOCO_NAME,
        },
        work_dir='moma_mae-to-moco'),
    DemoMethod(
        'MOMA multi-teacher',
        'configs/demo/moma-multi-teacher_vit-tiny-p4_1xb128-12e_digit-scenes'
        '.py',
        teachers={
            'model.teachers.mae.teacher.checkpoint': MAE_NAME,
            'model.teachers.moco.teacher.checkpoint': MOCO_NAME,
        },
        work_dir='moma_multi-teacher'),
    DemoMethod(
        'SdAE student',
        'configs/demo/sdae_vit-tiny-p4_1xb128-100e_digit-scenes.py',
        extra_rows={'SdAE EMA teacher': 'teacher'}),
    DemoMethod(
        'MimCo student',
        'configs/demo/mimco_vit-tiny-p4_1xb128-20e_digit-scenes.py',
        teachers={'model.teacher.checkpoint': MOCO_NAME}),
    DemoMethod(
        'M-MoCo n=8',
        'configs/demo/mmoco_vit-tiny-p4_1xb128-12e_digit-scenes.py',
        work_dir='mmoco_n8'),
    DemoMethod(
        'M-MoCo n=1 (baseline)',
        'configs/demo/mmoco-n1_vit-tiny-p4_1xb128-12e_digit-scenes.py',
        work_dir='mmoco_n1'),
]


class JobSlots:
    """At most ``jobs`` subprocesses at a time, ``threads`` threads each.

    A free slot goes to the waiting job of the lowest priority number
    (:func:`priority`; ties: first come), so that the teachers, which gate
    the students, never queue behind a student.
    """

    def __init__(self, jobs: int, start_open: bool = True) -> None:
        self.jobs = jobs
        self.threads = max(1, (os.cpu_count() or 1) // jobs)
        self._free = jobs
        self._open = threading.Event()  # no job starts before open()
        if start_open:
            self._open.set()
        self._waiting: List[Tuple[int, int]] = []
        self._counter = 0
        self._cond = threading.Condition()
        self._print_lock = threading.Lock()

    def _acquire(self, rank: int) -> None:
        with self._cond:
            self._counter += 1
            ticket = (rank, self._counter)
            heapq.heappush(self._waiting, ticket)
            self._cond.wait_for(lambda: self._open.is_set() and self._free > 0
                                and self._waiting[0] == ticket)
            heapq.heappop(self._waiting)
            self._free -= 1
            self._cond.notify_all()

    def open(self, delay: float = 0.0) -> None:
        """Let jobs start, after ``delay`` seconds in which the job threads
        queue up (so that the first slots go by rank, not by arrival)."""
        time.sleep(delay)
        with self._cond:
            self._open.set()
            self._cond.notify_all()

    def _release(self) -> None:
        with self._cond:
            self._free += 1
            self._cond.notify_all()

    def run(self, cmd: List[str], log_path: str) -> float:
        """Run a tool in a free slot, log its output to a file; return its
        wall seconds (from start to end, not counting the wait)."""
        os.makedirs(osp.dirname(log_path), exist_ok=True)
        env = dict(os.environ, OMP_NUM_THREADS=str(self.threads))
        self._acquire(getattr(_PRIORITY, 'rank', DEFAULT_RANK))
        try:
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
        finally:
            self._release()
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
_PRIORITY = threading.local()
#: rank of the jobs of a thread that set none (baselines, transfer, pictures)
DEFAULT_RANK = 1000


def with_priority(rank: int, function, *args):
    """Call ``function(*args)`` with every job it runs ranked ``rank``."""
    _PRIORITY.rank = rank
    try:
        return function(*args)
    finally:
        del _PRIORITY.rank


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


#: evaluation seeds (``--seeds``): each draws the labelled subset of the
#: frozen-feature protocols, the network of the random-init row and, with
#: ``--finetune``, the fine-tuning run's seed
SEEDS: List[int] = [0, 1, 2]
#: fine-tune column (``--finetune``)
WITH_FINETUNE = False
PROTOCOLS = ('knn', 'linear', 'finetune')
PROTOCOL_NAMES = dict(knn='kNN', linear='linear', finetune='fine-tune')


def frozen_eval(config: str, checkpoint: Optional[str], work_dir: str,
                extra: List[str] = ()) -> Dict[str, List[float]]:
    """kNN and linear-probe top-1 (%) per evaluation seed
    (tools/frozen_eval.py)."""
    out = osp.join(work_dir, 'frozen_eval.json')
    cmd = [sys.executable, 'tools/frozen_eval.py', config]
    cmd += [checkpoint] if checkpoint else []
    cmd += ['--seeds', *map(str, SEEDS), '--labels-per-class',
            str(LABELS_PER_CLASS), *extra, '--out', out]
    run(cmd, osp.join(work_dir, 'frozen_eval.log'))
    result = read_json(out)
    return dict(knn=result['knn'], linear=result['linear'])


def finetune(checkpoint: Optional[str], work_dir: str,
             prefix: str = 'backbone.') -> List[float]:
    """Top-1 (%) of the fixed fine-tuning recipe, one run per seed."""
    init = ([f'model.backbone.init_cfg.checkpoint={checkpoint}',
             f'model.backbone.init_cfg.prefix={prefix}']
            if checkpoint else ['model.backbone.init_cfg=None'])
    scores = []
    for seed in SEEDS:
        seed_dir = osp.join(work_dir, f'seed{seed}')
        run([sys.executable, 'tools/train.py', FINETUNE_CONFIG, '--work-dir',
             seed_dir, '--cfg-options', f'randomness.seed={seed}', *init],
            osp.join(seed_dir, 'finetune.log'))
        scores.append(final_scalars(seed_dir, 'accuracy/top1'))
    return scores


def evaluate_row(config: str, checkpoint: Optional[str], eval_dir: str,
                 extra: List[str] = (),
                 prefix: str = 'backbone.') -> Dict[str, List[float]]:
    """Every protocol of one row: per-seed scores by protocol name."""
    os.makedirs(eval_dir, exist_ok=True)
    scores = frozen_eval(config, checkpoint, eval_dir, extra)
    if WITH_FINETUNE and '--raw-pixels' not in extra:
        scores['finetune'] = finetune(checkpoint,
                                      osp.join(eval_dir, 'finetune'), prefix)
    return scores


def pretrain_budget(work_dir: str, seconds: float,
                    cached: Optional[dict] = None) -> str:
    checkpoint = last_checkpoint(work_dir)
    import torch  # noqa: delayed: only needed here

    import mmmoma  # noqa: F401  (safe-loading fixes for the checkpoint)
    meta = torch.load(checkpoint, map_location='cpu')['meta']
    budget = f'{meta["epoch"]} ep / {meta["iter"]} it'
    if cached is not None:
        return budget + f' / cached (built in {cached["seconds"]:.0f} s)'
    return budget + f' / {seconds:.0f} s'


RANDOM_INIT_NAME = 'random-init ViT'


def format_table(rows: List[dict]) -> str:
    """The demo table: mean ± std per protocol and the "beats random init"
    column (the protocols in which the row's difference of means to the
    random-init row exceeds twice the pooled std)."""
    from mmmoma.evaluation.linear_probe import beats, format_mean_std
    protocols = [p for p in PROTOCOLS if any(p in row['scores']
                                             for row in rows)]
    baseline = next((row['scores'] for row in rows
                     if row['name'] == RANDOM_INIT_NAME), None)
    header = ['representation', 'pre-training budget'] + [
        f'{PROTOCOL_NAMES[p]} top-1 (%)' for p in protocols
    ] + ['beats random init']
    lines = ['| ' + ' | '.join(header) + ' |',
             '|' + '---|' * len(header)]
    for row in rows:
        cells = [row['name'], row['budget']]
        for protocol in protocols:
            scores = row['scores'].get(protocol)
            cells.append('—' if scores is None else
                         format_mean_std(scores))
        if row['name'] == RANDOM_INIT_NAME or baseline is None:
            cells.append('—')
        else:
            won = [PROTOCOL_NAMES[p] for p in protocols
                   if p in row['scores'] and p in baseline
                   and beats(row['scores'][p], baseline[p])]
            cells.append(', '.join(won) if won else 'no')
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def demo_cache_dir() -> str:
    return os.environ.get('MMMOMA_DEMO_CACHE',
                          osp.join(osp.expanduser('~'), '.cache', 'mmmoma',
                                   'demo'))


def cache_key(config: str, options: List[str]) -> str:
    """sha256 of what a cached run depends on: the config as loaded (with
    ``options``), every mmmoma source file, the data set's meta.json and the
    torch version."""
    import torch
    from mmengine.config import Config, DictAction
    cfg = Config.fromfile(osp.join(REPO_ROOT, config))
    if options:
        parsed = argparse.ArgumentParser()
        parsed.add_argument('--o', nargs='+', action=DictAction)
        cfg.merge_from_dict(parsed.parse_args(['--o', *options]).o)
    digest = hashlib.sha256(cfg.pretty_text.encode())
    sources = sorted(glob.glob(osp.join(REPO_ROOT, 'mmmoma', '**', '*.py'),
                               recursive=True))
    for path in sources + [osp.join(REPO_ROOT, DATA_ROOT, 'meta.json')]:
        digest.update(osp.relpath(path, REPO_ROOT).encode())
        with open(path, 'rb') as f:
            digest.update(f.read())
    digest.update(torch.__version__.encode())
    return digest.hexdigest()[:16]


def restore_cached(method: DemoMethod, key: str,
                   work_dir: str) -> Optional[dict]:
    """Copy a cached run into ``work_dir``; None on a cache miss."""
    folder = osp.join(demo_cache_dir(), f'{method.work_dir_name}-{key}')
    if not osp.isfile(osp.join(folder, 'cache.json')):
        return None
    info = read_json(osp.join(folder, 'cache.json'))
    if osp.isdir(work_dir):
        shutil.rmtree(work_dir)
    shutil.copytree(osp.join(folder, 'run'), work_dir)
    # the run's own last_checkpoint names the path it was trained in
    with open(osp.join(work_dir, 'last_checkpoint'), 'w') as f:
        f.write(osp.join(work_dir, info['checkpoint']))
    return info


def store_cached(method: DemoMethod, key: str, work_dir: str,
                 seconds: float) -> None:
    """Copy a finished run into the cache (atomically: a copy, then a
    rename, so an interrupted copy is never read as a hit)."""
    folder = osp.join(demo_cache_dir(), f'{method.work_dir_name}-{key}')
    if osp.isdir(folder):
        return
    os.makedirs(demo_cache_dir(), exist_ok=True)
    staging = f'{folder}.tmp{os.getpid()}'
    shutil.rmtree(staging, ignore_errors=True)
    checkpoint = osp.relpath(last_checkpoint(work_dir), work_dir)
    shutil.copytree(work_dir, osp.join(staging, 'run'))
    with open(osp.join(staging, 'cache.json'), 'w') as f:
        json.dump(dict(config=method.config, key=key, seconds=seconds,
                       checkpoint=checkpoint), f, indent=1)
    os.replace(staging, folder)


USE_CACHE = True
#: cache keys computed before the job threads start (methods without
#: teachers), so that a teacher asks for its job slot at once
CACHE_KEYS: Dict[str, str] = {}

#: ``--budget smoke`` (the test suite's run of the whole pipeline): every
#: pre-training run is one epoch of two batches of 32, UperNet two
#: iterations on 8 val scenes, and each seed labels 5 scenes per class;
#: nothing is cached
BUDGETS = ('short', 'long', 'smoke')
#: ``--budget long``: what each method gets on top of its config (the
#: smallest budget measured to matter; see the README's Demo section)
LONG_OPTIONS: Dict[str, List[str]] = {
    MOCO_NAME: [
        'train_cfg.max_epochs=60', 'param_scheduler.1.T_max=55',
        'param_scheduler.1.end=60', 'default_hooks.checkpoint.interval=60'
    ],
}
METHOD_OPTIONS: Dict[str, List[str]] = {}
SMOKE_PRETRAIN_OPTIONS = [
    'train_cfg.max_epochs=1', 'train_dataloader.dataset.indices=64',
    'train_dataloader.batch_size=32',
    'train_dataloader.num_workers=0',
    'train_dataloader.persistent_workers=False'
]
SMOKE_SEG_OPTIONS = [
    'train_cfg.max_iters=2', 'train_cfg.val_interval=2',
    'default_hooks.checkpoint.interval=2', 'val_dataloader.dataset.indices=8'
]
PRETRAIN_OPTIONS: List[str] = []
SEG_OPTIONS: List[str] = []
LABELS_PER_CLASS = 100


def evaluate_method(method: DemoMethod, work_root: str,
                    checkpoints: Dict[str, 'Future[str]']) -> List[dict]:
    """Pre-train one method (after its teachers), then evaluate its rows.

    Sets ``checkpoints[method.name]`` as soon as the checkpoint exists, so
    methods that need it can start while this one is being evaluated.
    """
    own_checkpoint = checkpoints[method.name]
    try:
        work_dir = osp.join(work_root, method.work_dir_name)
        options = [
            f'{key}={teacher_checkpoint(teacher, checkpoints, work_root)}'
            for key, teacher in method.teachers.items()
        ] + METHOD_OPTIONS.get(method.name, [])
        cached = None
        key = None
        if method.cached and USE_CACHE:
            key = CACHE_KEYS.get(method.name) or cache_key(
                method.config, options)
        if key is not None:
            cached = restore_cached(method, key, work_dir)
        seconds = 0.0
        if cached is None:
            os.makedirs(work_dir, exist_ok=True)
            cmd = [sys.executable, 'tools/train.py', method.config,
                   '--work-dir', work_dir]
            if options or PRETRAIN_OPTIONS:
                cmd += ['--cfg-options', *options, *PRETRAIN_OPTIONS]
            seconds = run(cmd, osp.join(work_dir, 'pretrain.log'))
            if key is not None:
                store_cached(method, key, work_dir, seconds)
        else:
            SLOTS.print(f'{method.name}: reused from the demo cache '
                        f'({demo_cache_dir()}, key {key})')
        checkpoint = last_checkpoint(work_dir)
        own_checkpoint.set_result(checkpoint)
    except BaseException as error:  # waiting students fail too
        own_checkpoint.set_exception(error)
        raise
    budget = pretrain_budget(work_dir, seconds, cached)
    # the same options: a distillation model builds its teachers
    cfg_options = ['--cfg-options', *options] if options else []
    rows = []
    for row_name, (encoder, eval_dir) in method.row_dirs(work_root).items():
        prefix = encoder_prefix(checkpoint, encoder)
        rows.append(dict(
            name=row_name,
            budget=budget,
            scores=evaluate_row(method.config, checkpoint, eval_dir,
                                ['--prefix', prefix, *cfg_options], prefix)))
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
                   *SEG_OPTIONS, *cfg_options],
                  osp.join(work_dir, 'segment.log'))
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
    """Raw pixels (frozen-feature protocols only) and a randomly
    initialised ViT (one network per evaluation seed)."""
    rows = [dict(name='raw pixels', budget='—',
                 scores=evaluate_row(FINETUNE_CONFIG, None,
                                     osp.join(work_root, 'raw_pixels'),
                                     ['--raw-pixels']))]
    rows.append(dict(
        name=RANDOM_INIT_NAME, budget='—',
        scores=evaluate_row(FINETUNE_CONFIG, None,
                            osp.join(work_root, 'random_init'),
                            ['--cfg-options',
                             'model.backbone.init_cfg=None'])))
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
    if WITH_FINETUNE:  # the first seed's run of every row
        finetune_dirs = {RANDOM_INIT_NAME: osp.join(work_root, 'random_init')}
        for method in methods:
            finetune_dirs.update({
                row_name: eval_dir
                for row_name, (_, eval_dir) in method.row_dirs(
                    work_root).items()
            })
        stages['finetune'] = [
            read_run(osp.join(work_dir, 'finetune', f'seed{SEEDS[0]}'), name)
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
    global SLOTS, SEEDS, WITH_FINETUNE, USE_CACHE, PRETRAIN_OPTIONS, \
        SEG_OPTIONS, LABELS_PER_CLASS, METHOD_OPTIONS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--work-dir', default='work_dirs/demo')
    parser.add_argument('--only', nargs='+', help='method names to run')
    parser.add_argument(
        '--jobs',
        type=int,
        default=2,
        help='subprocesses run side by side (default 2), each with '
        'cpu_count // jobs threads')
    parser.add_argument(
        '--seeds',
        type=int,
        nargs='+',
        default=SEEDS,
        help='evaluation seeds (default 0 1 2; at least 2 for a std)')
    parser.add_argument(
        '--finetune',
        action='store_true',
        help='add the fine-tune column (one run per seed and row)')
    parser.add_argument(
        '--no-cache',
        action='store_true',
        help='train the cached teachers even when the demo cache has them')
    parser.add_argument(
        '--budget',
        choices=BUDGETS,
        default='short',
        help='short: the configs as they are (default); long: LONG_OPTIONS '
        'on top (a 60-epoch MoCo v3 teacher); smoke: the whole pipeline in '
        'minutes (one epoch of two batches per run), for tests')
    args = parser.parse_args()
    if args.jobs < 1:
        parser.error(f'--jobs must be >= 1, got {args.jobs}')
    if len(set(args.seeds)) != len(args.seeds) or len(args.seeds) < 2:
        parser.error(f'--seeds must be at least 2 distinct seeds, got '
                     f'{args.seeds}')
    SLOTS = JobSlots(args.jobs)  # the data set is made first
    SEEDS, WITH_FINETUNE, USE_CACHE = (list(args.seeds), args.finetune,
                                       not args.no_cache)
    if args.budget == 'smoke':
        PRETRAIN_OPTIONS, SEG_OPTIONS = (SMOKE_PRETRAIN_OPTIONS,
                                         SMOKE_SEG_OPTIONS)
        LABELS_PER_CLASS, USE_CACHE = 5, False
    elif args.budget == 'long':
        METHOD_OPTIONS = LONG_OPTIONS
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
    # closed until every job thread has queued
    SLOTS = JobSlots(args.jobs, start_open=False)
    if USE_CACHE:
        CACHE_KEYS.update({m.name: cache_key(m.config,
                                             METHOD_OPTIONS.get(m.name, []))
                           for m in methods if m.cached and not m.teachers})
    # one thread per method chain (they mostly wait for a job slot); the
    # baselines and methods without teachers go first, the segmentation
    # runs last (they fill the slots while the others wait for teachers)
    with ThreadPoolExecutor(max_workers=len(methods) + 4) as pool:
        baselines = pool.submit(baseline_rows, work_root)
        # teachers (and every method in METHODS order) before the rest
        results = [
            pool.submit(with_priority, rank, evaluate_method, method,
                        work_root, checkpoints)
            for rank, method in enumerate(methods)
        ]
        transfer = [
            pool.submit(random_transfer_row, work_root),
            pool.submit(pretrained_transfer_row, work_root, checkpoints),
        ] if with_transfer else []
        pictures = pool.submit(masking_pictures, work_root, methods)
        SLOTS.open(delay=2.0)
        rows = baselines.result()
        for result in results:
            rows += result.result()
        transfer_rows = [result.result() for result in transfer]
        pictures.result()

    table = format_table(rows)
    plots = write_plots(work_root, methods, with_transfer)
    minutes = (time.time() - started) / 60
    note = (f'\nDigit scenes (32 px, 10 classes). Mean ± std over evaluation '
            f'seeds {SEEDS}; each seed draws {LABELS_PER_CLASS} labelled '
            f'train scenes per '
            f'class (and the random-init network). kNN: k=20, cosine, '
            f'T=0.07; linear: logistic regression on standardised frozen '
            f'features'
            + (f'; fine-tune: {osp.basename(FINETUNE_CONFIG)}'
               if WITH_FINETUNE else '') +
            '. "beats random init": the protocols in which the difference '
            'of means exceeds 2 × the pooled std. Pre-training seconds are '
            f'wall time with {SLOTS.jobs} job(s) of '
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
