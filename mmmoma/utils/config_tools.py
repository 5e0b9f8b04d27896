"""Config surgery shared by the tools: load a config, walk it, find and
resize its train pipeline."""
import os.path as osp
from typing import Any, Dict, Iterator, List, Tuple

from mmengine.config import Config
from mmengine.hub import get_config

#: Output-size key of each crop / resize transform that is set to
#: ``--img-size`` in the train pipeline.
CROP_SIZE_KEYS = {
    'ContrastiveViews': 'crop_size',
    'RandomResizedCrop': 'scale',
    'RandomCrop': 'crop_size',
    'CenterCrop': 'crop_size',
    'Resize': 'scale',
}


def load_config(path: str) -> Config:
    """Load a config file, or a packaged one written ``package::path``."""
    if '::' in path:
        return get_config(path)
    if not osp.isfile(path):
        raise FileNotFoundError(f'config file not found: {path}')
    return Config.fromfile(path)


def walk_dicts(node: Any, path: str) -> Iterator[Tuple[str, Dict[str, Any]]]:
    """Yield (path, dict) for every dict below ``node`` (depth first)."""
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            yield from walk_dicts(value, f'{path}.{key}')
    elif isinstance(node, (list, tuple)):
        for index, value in enumerate(node):
            yield from walk_dicts(value, f'{path}[{index}]')


def find_train_pipeline(cfg: Config) -> List[Dict[str, Any]]:
    """The train pipeline of ``cfg.train_dataloader`` (through dataset
    wrappers such as ``RepeatDataset``)."""
    dataset = cfg.get('train_dataloader', {}).get('dataset')
    while isinstance(dataset, dict):
        if 'pipeline' in dataset:
            return dataset['pipeline']
        dataset = dataset.get('dataset')
    raise ValueError('the config has no train_dataloader.dataset.pipeline')


def override_pipeline_size(pipeline: List[Dict[str, Any]],
                           img_size: int) -> List[str]:
    """Set the output size of every crop / resize transform (also inside
    ``MultiView`` / ``RandomApply``) to ``img_size``, in place.

    Returns:
        The rewritten fields, as ``path: old -> new`` strings.
    """
    changes = []
    for path, node in walk_dicts(pipeline, 'pipeline'):
        key = CROP_SIZE_KEYS.get(node.get('type'))
        if key is not None and node.get(key) != img_size:
            changes.append(f'{path}.{key}: {node.get(key)!r} -> {img_size}')
            node[key] = img_size
    return changes
