import os
import sys

import pytest

if os.environ.get('PYTEST_XDIST_WORKER'):
    # pytest-xdist: the workers share the cores; one intra-op thread each
    # (tiny models train fastest on one thread), also for the tools the
    # tests run as subprocesses (they inherit OMP_NUM_THREADS).
    os.environ['OMP_NUM_THREADS'] = '1'
    import torch
    torch.set_num_threads(1)

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

from mmengine.registry import init_default_scope  # noqa: E402

import mmmoma  # noqa: F401,E402  (registers components, compat fixes)

# Registry look-ups by name (e.g. init_cfg types) resolve in mmpretrain's
# scope, as in every config, also for tests that build no Runner.
init_default_scope('mmpretrain')

TINY_ARCH = dict(
    embed_dims=64, num_layers=2, num_heads=4, feedforward_channels=128)


#: the longest modules, collected first: with pytest-xdist (``-n 2 --dist
#: loadfile``) the smoke demo's module then starts at once instead of
#: finishing alone after everything else
SLOW_MODULES_FIRST = ('tests/test_tools/test_run_demo_smoke.py', )


def pytest_collection_modifyitems(session, config, items):
    def rank(item):
        path = item.nodeid.split('::')[0]
        return (SLOW_MODULES_FIRST.index(path)
                if path in SLOW_MODULES_FIRST else len(SLOW_MODULES_FIRST))

    items.sort(key=rank)  # stable: the rest keep their order


@pytest.fixture
def tiny_arch():
    return dict(TINY_ARCH)


@pytest.fixture
def one_thread():
    """Tiny models train fastest on one intra-op thread, and are then not
    slowed down by busy CPU cores."""
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def repo_root():
    return REPO_ROOT


def write_image_folder(root, num_classes=2, per_class=(8, 4), size=32, seed=0):
    """Write a tiny random-image classification set (train/ and val/)."""
    import numpy as np
    from PIL import Image
    rng = np.random.default_rng(seed)
    for split, count in zip(('train', 'val'), per_class):
        for cls in range(num_classes):
            folder = os.path.join(root, split, str(cls))
            os.makedirs(folder, exist_ok=True)
            for i in range(count):
                img = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
                img[..., cls % 3] = 255 - cls * 40  # class-dependent colour
                Image.fromarray(img).save(os.path.join(folder, f'{i}.png'))
    return root


@pytest.fixture(scope='session')
def tiny_image_folder(tmp_path_factory):
    return write_image_folder(str(tmp_path_factory.mktemp('tiny_images')))


@pytest.fixture(scope='session')
def imagenet_stand_in(tiny_image_folder, tmp_path_factory):
    """The tiny image folder with an ImageNet-style annotation file
    (``meta/train.txt``), so ``type='ImageNet'`` configs read it."""
    root = tmp_path_factory.mktemp('imagenet_stand_in')
    os.symlink(os.path.join(tiny_image_folder, 'train'), root / 'train')
    (root / 'meta').mkdir()
    lines = [
        f'{label}/{name} {label}' for label in sorted(
            os.listdir(os.path.join(tiny_image_folder, 'train')))
        for name in sorted(
            os.listdir(os.path.join(tiny_image_folder, 'train', label)))
    ]
    (root / 'meta' / 'train.txt').write_text('\n'.join(lines) + '\n')
    return str(root)
