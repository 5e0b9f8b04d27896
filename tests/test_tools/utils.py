import importlib.util
import os
import re
import subprocess
import sys

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
