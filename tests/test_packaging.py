"""Packaging (issue 18): what the wheel ships and which python the scripts run.

The wheel is built once per module from a copy of the source tree, so the
repo gets no build/, *.egg-info or mmmoma/.mim copy, and a stale .mim in the
repo cannot make the tests pass.
"""
import email.parser
import importlib.util
import os
import os.path as osp
import shutil
import stat
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path
from types import ModuleType
from typing import Callable, Iterable, Iterator, List, Set

import pytest

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
MIM = 'mmmoma/.mim/'
# Top-level entries of a checkout that are not source (.gitignore's).
NOT_SOURCE_TOP = {'.git', '.venv', 'work_dirs', 'data', 'build', 'dist',
                  '.pytest_cache'}
NOT_SOURCE_ANYWHERE = shutil.ignore_patterns('__pycache__', '*.pyc',
                                             '*.egg-info')
TOOLS_SUFFIXES = ('.py', '.sh', '.txt')
# What a shell without an activated virtualenv typically has on PATH.
SYSTEM_PATH = '/usr/bin:/bin'


def ignore_non_source(root: str) -> Callable[[str, List[str]], Set[str]]:
    """shutil.copytree ``ignore`` for the untracked parts of ``root``."""
    def ignore(directory: str, names: List[str]) -> Set[str]:
        ignored = set(NOT_SOURCE_ANYWHERE(directory, names))
        if osp.samefile(directory, root):
            ignored |= NOT_SOURCE_TOP & set(names)
        if osp.samefile(directory, osp.join(root, 'mmmoma')):
            ignored.add('.mim')  # setup.py must make it itself
        return ignored
    return ignore


def copy_source_tree(dst: Path) -> Path:
    """Copy the repo's sources (tests/ included) to ``dst``; return it."""
    shutil.copytree(REPO_ROOT, dst, ignore=ignore_non_source(REPO_ROOT))
    return dst


def check_run(cmd: List[str], cwd: Path) -> None:
    """Run a build command; fail the test with its output if it fails."""
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]


def repo_files(folder: str, suffixes: Iterable[str]) -> Set[str]:
    """Paths under REPO_ROOT/folder with one of ``suffixes``, '/'-joined."""
    root = Path(REPO_ROOT)
    return {p.relative_to(root).as_posix()
            for p in (root / folder).rglob('*')
            if p.is_file() and p.suffix in tuple(suffixes)
            and '__pycache__' not in p.parts}


def mim_files(names: Iterable[str], folder: str) -> Set[str]:
    """Archive entries under mmmoma/.mim/folder, relative to .mim."""
    return {n[len(MIM):] for n in names if n.startswith(MIM + folder + '/')}


@pytest.fixture(scope='module')
def wheel(tmp_path_factory) -> Iterator[zipfile.ZipFile]:
    """The wheel pip builds from a fresh copy of the source tree."""
    tmp = tmp_path_factory.mktemp('wheel')
    src = copy_source_tree(tmp / 'src')
    check_run([sys.executable, '-m', 'pip', 'wheel', '--no-deps',
               '--no-build-isolation', '--no-index', '--no-cache-dir',
               '.', '-w', str(tmp / 'dist')], cwd=src)
    (path, ) = (tmp / 'dist').glob('mmmoma-*.whl')
    with zipfile.ZipFile(path) as archive:
        yield archive


def dist_info(wheel: zipfile.ZipFile, name: str) -> str:
    """The text of one file of the wheel's dist-info, e.g. METADATA."""
    (entry, ) = [n for n in wheel.namelist()
                 if n.split('/')[0].endswith('.dist-info')
                 and n.endswith('/' + name)]
    return wheel.read(entry).decode()


def test_wheel_installs_mmmoma_alone(wheel):
    assert dist_info(wheel, 'top_level.txt').split() == ['mmmoma']
    outside = [n for n in wheel.namelist()
               if not n.startswith('mmmoma/') and '.dist-info/' not in n]
    assert outside == []


def test_wheel_ships_every_config(wheel):
    names = wheel.namelist()
    # Every config, metafile and method README, no more and no fewer.
    expected = repo_files('configs', ('.py', '.yml', '.md'))
    assert mim_files(names, 'configs') == expected
    assert 'configs/mimco/metafile.yml' in expected
    assert 'configs/mimco/README.md' in expected


def test_wheel_ships_tools_and_model_index(wheel):
    names = wheel.namelist()
    expected = repo_files('tools', TOOLS_SUFFIXES)
    assert mim_files(names, 'tools') == expected
    assert {'tools/train.py', 'tools/dist_train.sh'} <= expected
    with open(osp.join(REPO_ROOT, 'model-index.yml'), 'rb') as f:
        assert wheel.read(MIM + 'model-index.yml') == f.read()


def test_wheel_carries_apache_license(wheel):
    with open(osp.join(REPO_ROOT, 'LICENSE')) as f:
        license_text = f.read()
    assert 'Version 2.0, January 2004' in license_text
    assert 'Copyright 2026 mmmoma authors' in license_text
    assert dist_info(wheel, 'LICENSE') == license_text
    metadata = email.parser.Parser().parsestr(dist_info(wheel, 'METADATA'))
    assert metadata['License-Expression'] == 'Apache-2.0'
    assert metadata['License-File'] == 'LICENSE'


def test_editable_build_links_mim_to_the_repo(tmp_path):
    """pip install -e serves mmmoma/ from the checkout: .mim links back."""
    src = copy_source_tree(tmp_path / 'src')
    check_run([sys.executable, '-c',
               'from setuptools import build_meta; '
               f'build_meta.build_editable({str(tmp_path)!r})'], cwd=src)
    for name in ('configs', 'tools', 'model-index.yml'):
        link = src / 'mmmoma' / '.mim' / name
        assert link.is_symlink(), name
        assert link.resolve() == (src / name).resolve()
    (path, ) = tmp_path.glob('mmmoma-*.whl')
    with zipfile.ZipFile(path) as archive:
        (finder, ) = [n for n in archive.namelist() if n.endswith('finder.py')]
        mapping = archive.read(finder).decode()
    assert "'mmmoma'" in mapping and "'tests" not in mapping


def test_sdist_builds_a_complete_wheel(tmp_path):
    """pip installs from an sdist too: it needs what setup.py reads, and the
    .mim copy (the sdist has no top-level configs/ to copy from)."""
    src = copy_source_tree(tmp_path / 'src')
    check_run([sys.executable, '-c',
               'from setuptools import build_meta; '
               f'build_meta.build_sdist({str(tmp_path)!r})'], cwd=src)
    (path, ) = tmp_path.glob('mmmoma-*.tar.gz')
    with tarfile.open(path) as archive:
        # Files only, without the sdist's top folder mmmoma-<version>/.
        names = {m.name.split('/', 1)[1] for m in archive.getmembers()
                 if m.isfile()}
    assert {'LICENSE', 'CHANGELOG.md', 'requirements/runtime.txt',
            'requirements/tests.txt', MIM + 'model-index.yml'} <= names
    assert mim_files(names, 'configs') == repo_files(
        'configs', ('.py', '.yml', '.md'))
    assert mim_files(names, 'tools') == repo_files('tools', TOOLS_SUFFIXES)


def load_setup_py() -> ModuleType:
    """setup.py as a module (its __main__ guard keeps setup() from running)."""
    spec = importlib.util.spec_from_file_location(
        'mmmoma_setup', osp.join(REPO_ROOT, 'setup.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize('argv,mode', [
    (['bdist_wheel', '--dist-dir', 'x'], 'copy'),
    (['sdist'], 'copy'),
    (['install'], 'copy'),
    (['editable_wheel', '--dist-dir', 'x'], 'symlink'),
    (['develop'], 'symlink'),
    (['egg_info'], None),
    (['dist_info'], None),
])
def test_mim_mode(argv, mode):
    assert load_setup_py().mim_mode(argv) == mode


def test_copy_replaces_a_link_without_following_it(tmp_path):
    """A wheel build after pip install -e must not rmtree through the link
    into the repo's own configs."""
    setup_py = load_setup_py()
    repo_configs = tmp_path / 'configs'
    repo_configs.mkdir()
    (repo_configs / 'a.py').write_text('a = 1\n')
    mim = tmp_path / 'mim'
    mim.mkdir()
    setup_py.place_mim_source(str(repo_configs), str(mim / 'configs'),
                              'symlink')
    assert (mim / 'configs').is_symlink()
    setup_py.place_mim_source(str(repo_configs), str(mim / 'configs'),
                              'copy')
    assert not (mim / 'configs').is_symlink()
    assert (mim / 'configs' / 'a.py').read_text() == 'a = 1\n'
    assert (repo_configs / 'a.py').exists()


# (script, its arguments, what the interpreter gets after the script's
# own path prefix {tools}); the scripts' torchrun / srun arguments and
# environment defaults are part of the expectation.
SCRIPT_CASES = [
    ('dist_train.sh', ['cfg.py', '2', '--extra'],
     '-m torch.distributed.run --nnodes=1 --node_rank=0 '
     '--master_addr=127.0.0.1 --nproc_per_node=2 --master_port=29500 '
     '{tools}/train.py cfg.py --launcher pytorch --extra'),
    ('dist_test.sh', ['cfg.py', 'ckpt.pth', '2', '--extra'],
     '-m torch.distributed.run --nnodes=1 --node_rank=0 '
     '--master_addr=127.0.0.1 --nproc_per_node=2 --master_port=29500 '
     '{tools}/test.py cfg.py ckpt.pth --launcher pytorch --extra'),
    ('slurm_train.sh', ['part', 'job', 'cfg.py', 'wd', '--extra'],
     '-u {tools}/train.py cfg.py --work-dir=wd --launcher=slurm --extra'),
]
# srun stand-in: drop srun's own options, run the command as srun would.
FAKE_SRUN = '''#!/bin/sh
while [ "$#" -gt 0 ]; do
    case "$1" in -p) shift 2 ;; -*) shift ;; *) break ;; esac
done
exec "$@"
'''


def write_executable(path: Path, text: str) -> None:
    """Write a script and make it executable."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def fake_python(path: Path, label: str) -> None:
    """An interpreter stand-in that prints ``label`` and its arguments."""
    write_executable(path, f'#!/bin/sh\necho {label} "$@"\n')


def script_tree(root: Path, script: str, with_venv: bool) -> Path:
    """A checkout-like tree: tools/<script>, bin/{python,srun}, maybe .venv.

    bin/ stands for PATH, so the test sees whether the venv beats PATH.
    """
    (root / 'tools').mkdir()
    for name in (script, 'find_python.sh'):
        shutil.copy(osp.join(REPO_ROOT, 'tools', name), root / 'tools')
    fake_python(root / 'bin' / 'python', 'path-python')
    write_executable(root / 'bin' / 'srun', FAKE_SRUN)
    if with_venv:
        fake_python(root / '.venv' / 'bin' / 'python', 'venv-python')
    fake_python(root / 'env-python', 'env-python')
    return root / 'tools' / script


@pytest.mark.parametrize('script,args,expected', SCRIPT_CASES)
@pytest.mark.parametrize('with_venv,set_python,label', [
    (True, True, 'env-python'),
    (True, False, 'venv-python'),
    (False, False, 'path-python'),
])
def test_script_interpreter(tmp_path, script, args, expected, with_venv,
                            set_python, label):
    """$PYTHON, else <repo>/.venv/bin/python, else python on PATH."""
    path = script_tree(tmp_path, script, with_venv)
    env = {'PATH': f'{tmp_path / "bin"}:{SYSTEM_PATH}', 'HOME': str(tmp_path)}
    if set_python:
        env['PYTHON'] = str(tmp_path / 'env-python')
    proc = subprocess.run(['bash', str(path), *args], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    line = f'{label} ' + expected.format(tools=path.parent)
    assert proc.stdout.strip() == line


@pytest.mark.skipif(
    not os.access(osp.join(REPO_ROOT, '.venv', 'bin', 'python'), os.X_OK),
    reason='no project virtualenv (.venv) in this checkout')
def test_dist_train_runs_train_py_without_activated_venv(tmp_path):
    """The real script under a bare PATH gets as far as train.py reading
    the config, i.e. it ran a python with torch and mmengine."""
    missing = tmp_path / 'missing_config.py'
    env = {'PATH': SYSTEM_PATH, 'HOME': str(tmp_path),
           'OMP_NUM_THREADS': '1'}
    proc = subprocess.run(
        ['bash', 'tools/dist_train.sh', str(missing), '1'], cwd=REPO_ROOT,
        env=env, capture_output=True, text=True, timeout=300)
    log = proc.stdout + proc.stderr
    assert proc.returncode != 0, log[-4000:]
    assert "No module named 'torch'" not in log
    # train.py got past its imports (torch, mmengine, mmmoma) to main()
    assert 'in main\n    cfg = Config.fromfile(args.config)' in log, log
    assert f"No such file or directory: '{missing}'" in log, log[-4000:]
