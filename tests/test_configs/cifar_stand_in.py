"""CIFAR stand-ins for the benchmark config test: tiny files in the layout
and pickle format of the CIFAR python releases, read by mmpretrain's own
CIFAR10 / CIFAR100 loading code. Only the md5 checks of the real archives
are switched off (subclasses with ``md5=None``); a config selects them with
``train_dataloader.dataset.type=CIFAR10StandIn`` after
``custom_imports`` adds this module."""
import os
import pickle

import numpy as np
from mmpretrain.datasets import CIFAR10, CIFAR100
from mmpretrain.registry import DATASETS


def _without_md5(entries):
    return [[name, None] for name, _ in entries]


@DATASETS.register_module()
class CIFAR10StandIn(CIFAR10):
    train_list = _without_md5(CIFAR10.train_list)
    test_list = _without_md5(CIFAR10.test_list)
    meta = dict(CIFAR10.meta, md5=None)


@DATASETS.register_module()
class CIFAR100StandIn(CIFAR100):
    train_list = _without_md5(CIFAR100.train_list)
    test_list = _without_md5(CIFAR100.test_list)
    meta = dict(CIFAR100.meta, md5=None)


def write_cifar_stand_in(root: str, num_classes: int, per_file: int = 8,
                         seed: int = 0) -> str:
    """Write ``root/<base_folder>/`` with ``per_file`` random 32 x 32 images
    in every train / test file (train: 5 files for CIFAR-10, 1 for
    CIFAR-100)."""
    dataset = CIFAR10 if num_classes == 10 else CIFAR100
    label_key = 'labels' if num_classes == 10 else 'fine_labels'
    folder = os.path.join(root, dataset.base_folder)
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    for name, _ in dataset.train_list + dataset.test_list:
        entry = {
            'data': rng.integers(0, 256, (per_file, 3 * 32 * 32), np.uint8),
            label_key: rng.integers(0, num_classes, per_file).tolist(),
        }
        with open(os.path.join(folder, name), 'wb') as file:
            pickle.dump(entry, file)
    with open(os.path.join(folder, dataset.meta['filename']), 'wb') as file:
        pickle.dump({dataset.meta['key']: list(dataset.METAINFO['classes'])},
                    file)
    return root
