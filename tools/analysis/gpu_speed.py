"""One prepared speed run for a GPU machine: what each switch buys.

Makes a stand-in ImageNet folder of full-size JPEGs (in a temporary folder),
then runs ``tools/analysis/benchmark.py`` once per row, each in its own
process with its own timeout (a failure or a hang costs that row only), at
ViT-B/16, 224 px, batch 256, ``--random-teachers``, and prints one table:

* methods: mmpretrain MAE, MOMA (MAE -> MoCo), SdAE, MimCo (ViT-B), M-MoCo
  (ViT-B);
* variants: ``fp32`` (every switch off), ``bf16``, then bf16 plus one switch
  each (``fused`` AdamW, ``teacher-bf16`` frozen-teacher weights (MOMA,
  MimCo), ``compile``, ``gpu-data`` (``data_path=gpu``)), then ``all``.

Rows run in that order (cheap, most informative first, compiles last) and
stop starting once ``--budget-s`` is spent; rows not run are listed. Only
three files go to ``--out-dir`` (``gpu_speed.txt``, ``gpu_speed.json``,
``gpu_speed.log``). No network is needed.

On the device machine (mmengine / mmcv / mmpretrain travel as wheels, see
the device README)::

    PYTHONUNBUFFERED=1 python3 tools/analysis/gpu_speed.py --out-dir $OUT

``--smoke`` runs the same plan on the CPU at a tiny ViT (batch 2, 1 step,
fp32 / bf16 only, no compile), which ``tests/test_tools/test_benchmark.py``
runs so that the script cannot rot; ``--dry-run`` prints the commands.
"""
import argparse
import json
import os
import os.path as osp
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List, NamedTuple, Optional, Sequence

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
BENCHMARK = osp.join(REPO_ROOT, 'tools', 'analysis', 'benchmark.py')
STAND_IN = osp.join(REPO_ROOT, 'tools', 'dataset_converters',
                    'make_stand_in_imagenet.py')


class Method(NamedTuple):
    key: str
    name: str
    config: str
    teacher_dtype_keys: Sequence[str] = ()


METHODS = (
    Method('mae', 'mmpretrain MAE',
           'mmpretrain::mae/mae_vit-base-p16_8xb512-amp-coslr-300e_in1k.py'),
    Method('moma', 'MOMA',
           'configs/moma/moma-mae-to-mocov3_vit-base-p16_8xb512-amp-coslr-'
           '100e_in1k.py', ('model.teachers.mae.teacher.dtype', )),
    Method('sdae', 'SdAE',
           'configs/sdae/sdae_vit-base-p16_8xb96-amp-coslr-100e_in1k.py'),
    Method('mimco', 'MimCo',
           'configs/mimco/mimco_vit-base-p16_8xb256-amp-coslr-100e_in1k.py',
           ('model.teacher.dtype', )),
    Method('mmoco', 'M-MoCo',
           'configs/mmoco/mmoco_vit-base-p16_8xb512-amp-coslr-300e_in1k.py'),
)
#: variant -> (precision, switches turned on)
VARIANTS = {
    'fp32': ('fp32', ()),
    'bf16': ('bf16', ()),
    'fused': ('bf16', ('fused', )),
    'teacher-bf16': ('bf16', ('teacher', )),
    'gpu-data': ('bf16', ('gpu', )),
    'compile': ('bf16', ('compile', )),
    'all': ('bf16', ('fused', 'teacher', 'gpu', 'compile')),
}
SMOKE_VARIANTS = ('fp32', 'bf16')
TINY_ARCH = ("{'embed_dims': 64, 'num_layers': 2, 'num_heads': 4, "
             "'feedforward_channels': 256}")


class Row(NamedTuple):
    label: str
    method: Method
    variant: str
    command: List[str]


def switch_options(method: Method, switches: Sequence[str]) -> List[str]:
    """``--cfg-options`` that set every switch explicitly (on or off), so a
    row is what its label says whatever the config's defaults are."""
    options = [f'optim_wrapper.optimizer.fused={"fused" in switches}']
    options += [f'{key}={"bfloat16" if "teacher" in switches else None}'
                for key in method.teacher_dtype_keys]
    options.append(f'compile={"compile" in switches}')
    options.append(f'data_path={"gpu" if "gpu" in switches else "cpu"}')
    return options


def plan(data_root: str, json_dir: str, smoke: bool,
         methods: Optional[Sequence[str]] = None) -> List[Row]:
    """The rows in running order: variant by variant, method by method."""
    if smoke:
        size = ['--arch', TINY_ARCH, '--img-size', '32', '--patch-size', '4',
                '--batch-size', '2', '--steps', '1', '--warmup', '0',
                '--device', 'cpu', '--data-images', '4']
        variants = SMOKE_VARIANTS
    else:
        size = ['--arch', 'b', '--img-size', '224', '--batch-size', '256',
                '--steps', '3', '--warmup', '1', '--device', 'cuda',
                '--data-images', '64']
        variants = tuple(VARIANTS)
    rows = []
    for variant in variants:
        precision, switches = VARIANTS[variant]
        for method in METHODS:
            if methods and method.key not in methods:
                continue
            if 'teacher' in switches and not method.teacher_dtype_keys \
                    and variant != 'all':
                continue
            options = switch_options(method, switches)
            if smoke and method.key in ('mae', 'sdae'):  # small decoder
                options += ['model.neck.decoder_embed_dim=64',
                            'model.neck.decoder_depth=1',
                            'model.neck.decoder_num_heads=4']
            label = f'{method.name} {variant}'
            out = osp.join(json_dir, f'{len(rows):02d}.json')
            rows.append(Row(label, method, variant, [
                sys.executable, BENCHMARK, method.config, '--no-baselines',
                '--random-teachers', *size, '--precision', precision,
                '--data-root', data_root, '--out', out, '--cfg-options',
                *options
            ]))
    return rows


def run_row(row: Row, timeout_s: float, log) -> Optional[str]:
    """Run one row's process; None on success, else why it failed."""
    env = dict(os.environ, PYTHONUNBUFFERED='1')
    env['PYTHONPATH'] = os.pathsep.join([REPO_ROOT, env.get('PYTHONPATH',
                                                            '')])
    proc = subprocess.Popen(row.command, cwd=REPO_ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        log.write(output)
        return f'timed out after {timeout_s:.0f} s'
    log.write(output)
    if proc.returncode:
        lines = [line for line in output.splitlines() if line.strip()]
        return f'exit {proc.returncode}: ' + (lines[-1] if lines else '')
    return None


def merged_table(results: List[Dict[str, Any]], labels: List[str]) -> str:
    """One table of the rows' JSON results, named by their labels."""
    sys.path.insert(0, osp.dirname(BENCHMARK))
    from benchmark_report import (BenchmarkResult, BenchmarkRow,
                                  BenchmarkSettings, format_table)
    rows = []
    for result, label in zip(results, labels):
        (row, ) = [BenchmarkRow(**row) for row in result['rows']]
        # the fp32 MAE row is the "vs MAE" reference of every row
        row.name = 'mmpretrain MAE' if label == 'mmpretrain MAE fp32' \
            else label
        rows.append(row)
    settings = BenchmarkSettings(**results[0]['settings'])
    settings.precision = 'per row'
    return format_table(BenchmarkResult(
        settings=settings,
        reference_forward_gflops=results[0]['reference_forward_gflops'],
        reference_attention_gflops=results[0]['reference_attention_gflops'],
        rows=rows,
        matmul_peak=results[0]['matmul_peak']))


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out-dir', default=os.environ.get('OUT', '.'))
    parser.add_argument('--smoke', action='store_true',
                        help='tiny ViT on the CPU, fp32 / bf16 only')
    parser.add_argument('--methods', nargs='+',
                        choices=[method.key for method in METHODS])
    parser.add_argument('--budget-s', type=float, default=540,
                        help='start no row after this many seconds')
    parser.add_argument('--row-timeout-s', type=float, default=150)
    parser.add_argument('--dry-run', action='store_true')
    args = parser.parse_args(argv)
    start = time.monotonic()
    os.makedirs(args.out_dir, exist_ok=True)
    work = tempfile.mkdtemp(prefix='gpu_speed_')
    data_root = osp.join(work, 'stand_in_imagenet')
    rows = plan(data_root, work, args.smoke, args.methods)
    if args.dry_run:
        for row in rows:
            print(f'{row.label}: {" ".join(row.command)}')
        return 0
    subprocess.run([sys.executable, STAND_IN, '--out', data_root,
                    '--images-per-class', '4' if args.smoke else '32'],
                   check=True)
    results, labels, problems = [], [], []
    with open(osp.join(args.out_dir, 'gpu_speed.log'), 'w') as log:
        for index, row in enumerate(rows, start=1):
            left = args.budget_s - (time.monotonic() - start)
            if left < 20:
                problems.append(f'{row.label}: not run (time budget)')
                continue
            print(f'[{index}/{len(rows)}] {row.label} ...', flush=True)
            log.write(f'\n===== {row.label}: {" ".join(row.command)}\n')
            error = run_row(row, min(args.row_timeout_s, left), log)
            log.flush()
            if error:
                problems.append(f'{row.label}: failed, {error}')
                print(f'  {problems[-1]}', flush=True)
                continue
            with open(row.command[row.command.index('--out') + 1]) as file:
                results.append(json.load(file))
            labels.append(row.label)
    text = merged_table(results, labels) if results else 'no row ran'
    text += ''.join(f'\n{problem}' for problem in problems)
    print(text, flush=True)
    with open(osp.join(args.out_dir, 'gpu_speed.txt'), 'w') as file:
        file.write(text + '\n')
    with open(osp.join(args.out_dir, 'gpu_speed.json'), 'w') as file:
        json.dump(dict(labels=labels, results=results, problems=problems),
                  file, indent=1)
    return 0 if results else 1


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
