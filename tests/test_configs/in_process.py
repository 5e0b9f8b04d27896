"""Train a config in the pytest process, as tools/train.py would, isolated
from the runs before and after it.

:func:`train_in_process` merges the config with tools/train.py's own
``merge_args`` (its dataloader defaults, the CPU fp32 fallback of AMP),
builds MMEngine's Runner and trains, with a unique ``experiment_name`` (so
unique MMEngine instance names), inside the suite's one isolation,
``tests/test_tools/utils.isolated_mmengine``, which restores what a Runner
changes process-wide. The ``train_in_process`` fixture (conftest.py) binds
it to the test's tmp_path.
"""
import argparse
import contextlib
import io
import itertools
import os
import re
from typing import Any, Dict, NamedTuple, Optional, Sequence, Union

from mmengine.config import Config, DictAction
from mmengine.logging import MMLogger
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from ..test_tools.utils import REPO_ROOT, isolated_mmengine, load_tool

_RUN_IDS = itertools.count()
_TRAIN_TOOL = []


class TrainRun(NamedTuple):
    """What one in-process training left behind.

    Attributes:
        log: Everything logged or printed (stdout and stderr), as the
            subprocess runs of tools/train.py printed it.
        cfg: The config the Runner was built from.
        work_dir: The run's work directory.
    """
    log: str
    cfg: Config
    work_dir: str

    @property
    def last_checkpoint(self) -> str:
        """The path that ``work_dir/last_checkpoint`` names."""
        with open(os.path.join(self.work_dir, 'last_checkpoint')) as file:
            return file.read().strip()


def train_tool() -> Any:
    """tools/train.py as a module (imported once)."""
    if not _TRAIN_TOOL:
        _TRAIN_TOOL.append(
            load_tool(os.path.join(REPO_ROOT, 'tools', 'train.py')))
    return _TRAIN_TOOL[0]


def parse_cfg_options(options: Sequence[str]) -> Dict[str, Any]:
    """``--cfg-options`` strings parsed as tools/train.py parses them."""
    parser = argparse.ArgumentParser()
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args(['--cfg-options', *options]).cfg_options


def train_in_process(cfg: Config,
                     work_dir: str,
                     cfg_options: Optional[Union[Sequence[str],
                                                 Dict[str, Any]]] = None,
                     name: str = 'run') -> TrainRun:
    """Train ``cfg`` as ``tools/train.py CONFIG --work-dir WORK_DIR
    --cfg-options ...`` does, in this process (see ``isolated_mmengine``).

    Args:
        cfg: The loaded (and shrunk) config; not modified.
        work_dir: The run's work directory.
        cfg_options: ``--cfg-options`` strings, or the dict they parse to.
        name: Start of the run's unique ``experiment_name``.

    Returns:
        The log and the config of the run.

    Raises:
        AssertionError: If training raises, with the end of the log.
    """
    if cfg_options is not None and not isinstance(cfg_options, dict):
        cfg_options = parse_cfg_options(cfg_options)
    args = argparse.Namespace(
        no_validate=False, launcher='none', work_dir=work_dir, amp=False,
        resume=None, auto_scale_lr=False, no_pin_memory=False,
        no_persistent_workers=False, cfg_options=cfg_options)
    cfg = Config(cfg.to_dict(), filename=cfg.filename)
    run_id = re.sub(r'\W+', '_', f'{name}_{os.getpid()}_{next(_RUN_IDS)}')
    cfg.experiment_name = run_id
    if cfg.get('randomness') is None:
        cfg.randomness = dict(seed=0)
    stream = io.StringIO()
    # one torch thread, as OMP_NUM_THREADS=1 gave the subprocess runs
    with isolated_mmengine(threads=1), contextlib.redirect_stdout(stream), \
            contextlib.redirect_stderr(stream):
        # the logger that messages before the Runner's go to (e.g. the
        # AMP -> fp32 fallback of merge_args)
        MMLogger.get_instance(f'{run_id}_setup', log_level='INFO')
        tool = train_tool()
        try:
            cfg = tool.merge_args(cfg, args)
            tool.setup_cpu_distributed(cfg, 'none')
            runner = (Runner.from_cfg(cfg) if 'runner_type' not in cfg else
                      RUNNERS.build(cfg))
            runner.train()
            del runner
        except Exception as error:
            raise AssertionError(
                f'training failed: {error!r}\n'
                f'{stream.getvalue()[-4000:]}') from error
    return TrainRun(stream.getvalue(), cfg, work_dir)
