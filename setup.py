import os
import os.path as osp
import shutil
import sys
from typing import Iterable, List, Optional

from setuptools import find_packages, setup

REPO_ROOT = osp.dirname(osp.abspath(__file__))
#: Where OpenMMLab's mim (and mmengine's ``mmmoma::`` config scope) look
#: for a package's configs, tools and model index.
MIM_DIR = osp.join(REPO_ROOT, 'mmmoma', '.mim')
MIM_SOURCES = ('configs', 'tools', 'model-index.yml')
# An editable install serves mmmoma/ from the repo, so links keep .mim in
# step with the repo's configs; every other build ships a frozen copy.
SYMLINK_COMMANDS = frozenset({'develop', 'editable_wheel'})
COPY_COMMANDS = frozenset({'bdist_wheel', 'sdist', 'install', 'build',
                           'build_py', 'bdist'})


def read_requirements(path: str) -> List[str]:
    """The requirement lines of ``path`` without comments or blanks."""
    with open(osp.join(REPO_ROOT, path)) as f:
        return [line.split('#')[0].strip() for line in f
                if line.split('#')[0].strip()]


def mim_mode(argv: Iterable[str]) -> Optional[str]:
    """'symlink', 'copy' or None (metadata-only commands such as egg_info)."""
    commands = set(argv)
    if commands & SYMLINK_COMMANDS:
        # Windows needs privileges for symlinks; a copy always works.
        return 'copy' if os.name == 'nt' else 'symlink'
    if commands & COPY_COMMANDS:
        return 'copy'
    return None


def remove_path(path: str) -> None:
    """Remove a file, a link or a directory tree at ``path`` if present.

    A link is unlinked, never followed: rmtree through a link to configs/
    would delete the repo's own configs.
    """
    if osp.islink(path) or osp.isfile(path):
        os.remove(path)
    elif osp.isdir(path):
        shutil.rmtree(path)


def place_mim_source(src: str, dst: str, mode: str) -> None:
    """Link or copy one of MIM_SOURCES (``src``) to ``dst`` inside .mim."""
    remove_path(dst)
    if mode == 'symlink':
        # Relative, so the link survives moving the checkout.
        os.symlink(osp.relpath(src, osp.dirname(dst)), dst)
    elif osp.isdir(src):
        shutil.copytree(src, dst, ignore=shutil.ignore_patterns(
            '__pycache__', '*.pyc'))
    else:
        shutil.copyfile(src, dst)


def add_mim_extension(mode: Optional[str]) -> None:
    """Put configs, tools and model-index.yml under mmmoma/.mim/.

    A source without its original (an unpacked sdist carries only the .mim
    copy) keeps the .mim entry it already has.
    """
    if mode is None:
        return
    os.makedirs(MIM_DIR, exist_ok=True)
    for name in MIM_SOURCES:
        src = osp.join(REPO_ROOT, name)
        if osp.exists(src):
            place_mim_source(src, osp.join(MIM_DIR, name), mode)


def read_version() -> str:
    """mmmoma.__version__ without importing mmmoma (and torch)."""
    version: dict = {}
    with open(osp.join(REPO_ROOT, 'mmmoma', 'version.py')) as f:
        exec(f.read(), version)
    return version['__version__']


if __name__ == '__main__':
    add_mim_extension(mim_mode(sys.argv[1:]))
    setup(
        name='mmmoma',
        version=read_version(),
        description='MOMA, SdAE, MimCo and M-MoCo self-supervised '
        'pre-training for MMEngine / mmpretrain / mmsegmentation',
        # Only mmmoma: tests/ and its subpackages stay out of site-packages.
        packages=find_packages(include=['mmmoma', 'mmmoma.*']),
        # MANIFEST.in selects mmmoma/.mim/** (configs, tools, model index).
        include_package_data=True,
        python_requires='>=3.8',
        # mmcv (full, with compiled ops) is built by tools/install_mmcv.sh.
        install_requires=read_requirements('requirements/runtime.txt'),
        extras_require={
            'tests': read_requirements('requirements/tests.txt')},
        license_expression='Apache-2.0',
        license_files=['LICENSE'],
        zip_safe=False,
    )
