"""Train a model from a config: the arguments of mmpretrain's tools/train.py.

Differences from mmpretrain's script, all from :mod:`mmmoma.compat`:
``--resume`` works under torch >= 2.6 and falls back to the newest complete
checkpoint when ``last_checkpoint`` is stale, ``--resume PATH`` refuses a
partial file by name, and ``--launcher pytorch`` works on a CPU-only machine
(gloo), so ``tools/dist_train.sh CONFIG 2`` runs anywhere. And
``--cfg-options data_path=gpu`` moves the train augmentation to the device
(:mod:`mmmoma.datasets.gpu_data_path`).
"""
import argparse
import os
import os.path as osp
from typing import List, Optional

from mmengine.config import Config, ConfigDict, DictAction
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

import mmmoma  # noqa: F401  (registers components, applies compat fixes)
from mmmoma.compat import (amp_to_fp32_without_gpu,
                           drop_persistent_workers_without_workers,
                           finish_distributed, setup_cpu_distributed)
from mmmoma.datasets.gpu_data_path import apply_data_path
from mmmoma.utils.checkpoint_files import why_incomplete


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from this checkpoint; without a path, from the latest '
        'checkpoint in the work directory')
    parser.add_argument(
        '--amp', action='store_true', help='automatic mixed precision')
    parser.add_argument(
        '--no-validate',
        action='store_true',
        help='do not evaluate checkpoints during training')
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='scale the learning rate by actual / base batch size')
    parser.add_argument(
        '--no-pin-memory',
        action='store_true',
        help='disable pin_memory in dataloaders')
    parser.add_argument(
        '--no-persistent-workers',
        action='store_true',
        help='disable persistent_workers in dataloaders')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, key=value (lists: key="[a,b]")')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def merge_args(cfg: Config, args: argparse.Namespace) -> Config:
    """Merge command-line arguments into the config."""
    if args.no_validate:
        cfg.val_cfg = None
        cfg.val_dataloader = None
        cfg.val_evaluator = None

    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])

    if args.amp:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')

    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        problem = why_incomplete(args.resume)
        if problem is not None:
            raise FileNotFoundError(
                f'--resume {args.resume}: the checkpoint is {problem}; give '
                'a complete checkpoint, or --resume without a path to resume '
                'from the newest complete one in the work directory')
        cfg.resume = True
        cfg.load_from = args.resume

    if args.auto_scale_lr:
        if cfg.get('auto_scale_lr') is None:
            raise ValueError('--auto-scale-lr needs `auto_scale_lr = '
                             'dict(base_batch_size=...)` in the config')
        cfg.auto_scale_lr.enable = True

    loader_fields = ('train_dataloader', 'val_dataloader', 'test_dataloader')
    for field in loader_fields:
        if cfg.get(field, None) is None:
            continue
        loader = ConfigDict(pin_memory=True, persistent_workers=True)
        if cfg.get('default_scope', 'mmpretrain') == 'mmpretrain':
            # mmpretrain's tools/train.py default; mmseg keeps mmengine's
            # pseudo_collate (its data preprocessor pads the crops)
            loader.collate_fn = dict(type='default_collate')
        loader.update(cfg[field])
        if args.no_pin_memory:
            loader.pin_memory = False
        if args.no_persistent_workers:
            loader.persistent_workers = False
        cfg[field] = loader

    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    drop_persistent_workers_without_workers(cfg)
    amp_to_fp32_without_gpu(cfg)
    # `--cfg-options data_path=gpu`: decode and augment on the device
    return apply_data_path(cfg)


def main(argv: Optional[List[str]] = None) -> None:
    """Run the tool; ``argv`` (default ``sys.argv[1:]``) lets tests call it
    in-process."""
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    cfg = merge_args(cfg, args)
    setup_cpu_distributed(cfg, args.launcher)
    if 'runner_type' not in cfg:
        runner = Runner.from_cfg(cfg)
    else:
        runner = RUNNERS.build(cfg)
    runner.train()
    finish_distributed()


if __name__ == '__main__':
    main()
