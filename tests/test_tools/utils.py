import contextlib
import gc
import importlib.util
import itertools
import logging
import os
import re
import subprocess
import sys
from typing import Optional

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
MAE_DEMO = os.path.join(REPO_ROOT, 'configs', 'demo',
                        'mae_vit-tiny-p4_1xb128-100e_digit-scenes.py')
MOCOV3_DEMO = os.path.join(REPO_ROOT, 'configs', 'demo',
                           'mocov3_vit-tiny-p4_1xb128-20e_digit-scenes.py')
SDAE_DEMO = os.path.join(REPO_ROOT, 'configs', 'demo',
                         'sdae_vit-tiny-p4_1xb128-100e_digit-scenes.py')
MIMCO_DEMO = os.path.join(REPO_ROOT, 'configs', 'demo',
                          'mimco_vit-tiny-p4_1xb128-20e_digit-scenes.py')
MMOCO_DEMO = os.path.join(REPO_ROOT, 'configs', 'demo',
                          'mmoco_vit-tiny-p4_1xb128-12e_digit-scenes.py')
FINETUNE_DEMO = os.path.join(REPO_ROOT, 'configs', 'demo',
                             'vit-tiny-p4_ft-1xb64-10e_digit-scenes.py')

#: a line of MMEngine's ProgressBar, e.g. '3/3, 1.2 task/s'
PROGRESS_BAR = re.compile(r'\d+/\d+, [\d.]+ task/s')


def pretrain_overrides(data_root, max_epochs=1, batch_size=4,
                       shipped_loader=False):
    """--cfg-options that point a demo pre-training config at tiny data.

    Args:
        shipped_loader (bool): keep the config's loader settings (worker
            processes, persistent workers) instead of loading in the main
            process.
    """
    loader = [] if shipped_loader else [
        'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False']
    return [
        f'train_dataloader.dataset.data_root={data_root}',
        f'train_dataloader.batch_size={batch_size}',
        *loader,
        f'train_cfg.max_epochs={max_epochs}',
        'default_hooks.checkpoint.interval=1',
        'default_hooks.checkpoint.max_keep_ckpts=10',
        'default_hooks.logger.interval=1',
    ]


def run(cmd, env=None, timeout=600):
    """Run a command from the repo root; fail the test with its output."""
    full_env = dict(os.environ)
    full_env['PYTHONPATH'] = os.pathsep.join(
        [REPO_ROOT, full_env.get('PYTHONPATH', '')])
    full_env.update(env or {})
    proc = subprocess.run(
        cmd, cwd=REPO_ROOT, env=full_env, capture_output=True, text=True,
        timeout=timeout)
    return proc


def python():
    return sys.executable


def load_tool(path: str):
    """Import a script under tools/ (not a package) as a module."""
    name = os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TRAIN_TOOL = os.path.join(REPO_ROOT, 'tools', 'train.py')
TEST_TOOL = os.path.join(REPO_ROOT, 'tools', 'test.py')
_RUN_COUNTER = itertools.count()


def manager_classes():
    """Every class with MMEngine's global instances (MessageHub,
    Visualizer and its subclasses, e.g. mmseg's ``SegLocalVisualizer``,
    MMLogger, DefaultScope, ...), each of which keeps its own instances."""
    from mmengine.utils import ManagerMixin
    seen, todo = [], [ManagerMixin]
    while todo:
        cls = todo.pop()
        for sub in cls.__subclasses__():
            if sub not in seen:
                seen.append(sub)
                todo.append(sub)
    return [cls for cls in seen if '_instance_dict' in vars(cls)]


@contextlib.contextmanager
def isolated_mmengine(threads: Optional[int] = None, sys_path=()):
    """Run MMEngine code in this process without leaking global state.

    The one isolation of every in-process run of the suite (the tools'
    ``main`` here, the config smoke runs of ``tests/test_configs``).
    Restores on exit: MMEngine's global instances (the new MessageHub /
    Visualizer / logger / DefaultScope instances are dropped, visualizers
    closed, the new loggers' files closed), the python / numpy / torch RNG
    states, torch's intra-op thread count, cuDNN and deterministic-algorithm
    flags, the multiprocessing start method, OpenCV's threads, os.environ
    (the Runner sets e.g. ``OMP_NUM_THREADS``) and ``sys.path``.

    Args:
        threads (int, optional): torch intra-op threads during the run.
        sys_path (Sequence[str]): folders put first on ``sys.path`` (e.g.
            for a config's ``custom_imports``).
    """
    import multiprocessing

    import cv2
    import torch
    from mmengine.visualization import Visualizer

    from mmmoma.utils.rng import preserve_rng_state
    instances = {cls: dict(cls._instance_dict) for cls in manager_classes()}
    num_threads = torch.get_num_threads()
    cudnn = (torch.backends.cudnn.benchmark,
             torch.backends.cudnn.deterministic)
    deterministic = torch.are_deterministic_algorithms_enabled()
    start_method = multiprocessing.get_start_method(allow_none=True)
    cv2_threads = cv2.getNumThreads()
    environ = dict(os.environ)
    path = list(sys.path)
    sys.path[:0] = [str(p) for p in sys_path]
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        with preserve_rng_state():
            yield
    finally:
        for cls in manager_classes():
            before = instances.get(cls, {})
            for name in [n for n in cls._instance_dict if n not in before]:
                instance = cls._instance_dict.pop(name)
                if isinstance(instance, Visualizer):
                    instance.close()
                for handler in getattr(instance, 'handlers', [])[:]:
                    handler.close()
                    instance.removeHandler(handler)
        torch.set_num_threads(num_threads)
        (torch.backends.cudnn.benchmark,
         torch.backends.cudnn.deterministic) = cudnn
        torch.use_deterministic_algorithms(deterministic)
        multiprocessing.set_start_method(start_method, force=True)
        cv2.setNumThreads(cv2_threads)
        os.environ.clear()
        os.environ.update(environ)
        sys.path[:] = path
        gc.collect()


def run_tool_in_process(tool_path: str, argv, threads=None,
                        sys_path=()) -> str:
    """A training / testing tool's ``main`` in this process (isolated, see
    :func:`isolated_mmengine`), with a unique ``experiment_name`` appended
    to ``--cfg-options`` (which must come last in ``argv``, if given);
    returns the text the run logged (its MMLogger file).

    ``main(argv)`` where the tool takes the arguments, else ``main()``
    with ``sys.argv`` set (e.g. mmpretrain's tools/train.py).
    """
    import inspect
    import traceback
    from unittest import mock

    import torch.utils.data._utils as torch_data_utils
    from mmengine.logging import MMLogger
    tool = load_tool(tool_path)
    argv = [str(arg) for arg in argv]
    name = f'inprocess{next(_RUN_COUNTER)}_{os.getpid()}'
    if '--cfg-options' not in argv:
        argv.append('--cfg-options')
    argv.append(f'experiment_name={name}')
    if inspect.signature(tool.main).parameters:
        def call():
            tool.main(argv)
    else:
        def call():
            with mock.patch.object(sys, 'argv', [tool_path, *argv]):
                tool.main()
    # Persistent loader workers forked from the test process outlive their
    # exit request; torch waits MP_STATUS_CHECK_INTERVAL (5 s) for each,
    # then terminates it. A short interval ends a run's workers at once
    # (a subprocess run never waits: its workers die with the process).
    with isolated_mmengine(threads, sys_path), mock.patch.object(
            torch_data_utils, 'MP_STATUS_CHECK_INTERVAL', 0.2):
        try:
            call()
        except BaseException as error:
            # free the run (and its loaders) now, not when the test ends
            traceback.clear_frames(error.__traceback__)
            raise
        finally:
            log_files = [
                handler.baseFilename
                for logger_name, logger in MMLogger._instance_dict.items()
                if logger_name.startswith(name)
                for handler in logger.handlers
                if isinstance(handler, logging.FileHandler)
            ]
            for handler in [h for logger in MMLogger._instance_dict.values()
                            for h in logger.handlers]:
                handler.flush()
            gc.collect()  # the loader workers of a failed run end now
    text = ''
    for log_file in log_files:
        with open(log_file) as f:
            text += f.read()
    return text


def train_in_process(config, work_dir, options=(), extra=(), threads=None,
                     sys_path=()) -> str:
    """tools/train.py's ``main`` in this process: ``config --work-dir
    work_dir *extra --cfg-options *options``; returns the logged text.

    Each run gets its own ``experiment_name`` (so its own MessageHub,
    Visualizer and logger), and leaves no global state behind; the run's
    randomness comes from its config (``randomness``), as in a subprocess.
    """
    argv = [config, '--work-dir', work_dir, *extra]
    if options:
        argv += ['--cfg-options', *options]
    return run_tool_in_process(TRAIN_TOOL, argv, threads, sys_path)


def evaluate_in_process(config, checkpoint, work_dir, options=(),
                        extra=(), threads=None) -> str:
    """tools/test.py's ``main`` in this process (see
    :func:`train_in_process`); returns the logged text."""
    argv = [config, checkpoint, '--work-dir', work_dir, *extra]
    if options:
        argv += ['--cfg-options', *options]
    return run_tool_in_process(TEST_TOOL, argv, threads)
