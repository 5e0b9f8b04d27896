from setuptools import find_packages, setup


def read_requirements(path: str) -> list:
    with open(path) as f:
        return [line.split('#')[0].strip() for line in f
                if line.split('#')[0].strip()]


version: dict = {}
exec(open('mmmoma/version.py').read(), version)

setup(
    name='mmmoma',
    version=version['__version__'],
    description='MOMA, SdAE, MimCo and M-MoCo self-supervised pre-training '
    'for MMEngine / mmpretrain / mmsegmentation',
    packages=find_packages(exclude=('configs', 'tools', 'tests')),
    python_requires='>=3.8',
    # mmcv (full, with compiled ops) is built by tools/install_mmcv.sh.
    install_requires=read_requirements('requirements/runtime.txt'),
    extras_require={'tests': read_requirements('requirements/tests.txt')},
    license='Apache License 2.0',
)
