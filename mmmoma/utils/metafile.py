"""Paper rows as data: check a config against its ``metafile.yml`` record.

A method's ``configs/<method>/metafile.yml`` (mmpretrain's metafile format,
see ``docs/metafiles.md``) holds one record per paper row: the config that
claims it (or ``Not Provided`` with the reason), the paper's number, and each
hyper-parameter the paper states, as a ``Key`` into the config, the
``Value`` and its ``Source``. :func:`check_record` compares a loaded config
with its record and lists every difference, so a test can keep configs and
papers equal.
"""
import inspect
import math
import os.path as osp
import re
from typing import Any, Dict, Iterable, List, Optional, Tuple

import yaml
from mmengine.config import Config, ConfigDict
from mmengine.registry import DefaultScope, Registry

#: Fields every record has.
RECORD_FIELDS = ('Name', 'In Collection', 'Paper Row', 'Results')
#: Relative tolerance of numeric comparisons.
REL_TOL = 1e-6
_SELECTOR = re.compile(r'^\[type=([^\]]+)\]$')
_GPUS_X_BATCH = re.compile(r'_(\d+)xb(\d+)')
_MISSING = object()


class MetafileError(ValueError):
    """A metafile record that cannot be checked (bad key, bad field)."""


def load_metafile(path: str) -> Dict[str, Any]:
    """Read a ``metafile.yml`` (a dict with ``Collections`` and ``Models``).

    Raises:
        MetafileError: naming the file, when the top-level layout is wrong.
    """
    with open(path, encoding='utf-8') as file:
        data = yaml.safe_load(file)
    if not isinstance(data, dict) or not isinstance(
            data.get('Collections'), list) or not isinstance(
                data.get('Models'), list):
        raise MetafileError(
            f'{path}: needs a list of Collections and a list of Models')
    return data


def _registries(scope: str) -> List[Registry]:
    """Every registry of the OpenMMLab package named by ``scope``."""
    if scope == 'mmseg':
        import mmseg.registry as module
    else:
        import mmpretrain.registry as module
    return [value for value in vars(module).values()
            if isinstance(value, Registry)]


def registered_default(type_name: Any, key: str, scope: str) -> Any:
    """The constructor default of ``key`` for the class registered as
    ``type_name`` under ``scope`` (or ``_MISSING``)."""
    cls = type_name
    if isinstance(type_name, str):
        cls = None
        with DefaultScope.overwrite_default_scope(scope):
            for registry in _registries(scope):
                cls = registry.get(type_name)
                if cls is not None:
                    break
    if not inspect.isclass(cls):
        return _MISSING
    parameter = inspect.signature(cls.__init__).parameters.get(key)
    if parameter is None or parameter.default is inspect.Parameter.empty:
        return _MISSING
    return parameter.default


def resolve_key(cfg: Any, key: str, scope: str = 'mmpretrain') -> Any:
    """The value at ``key`` in a config (rules in ``docs/metafiles.md``).

    ``a.b`` descends into dicts, an integer segment indexes a list,
    ``[type=Name]`` picks the one dict of a list whose ``type`` is ``Name``;
    a key missing from a dict that has a ``type`` resolves to the registered
    class's constructor default.

    Raises:
        MetafileError: naming the segment that does not resolve.
    """
    node = cfg._cfg_dict if isinstance(cfg, Config) else cfg
    segments = key.split('.')
    for depth, segment in enumerate(segments):
        where = '.'.join(segments[:depth]) or '<config>'
        selector = _SELECTOR.match(segment)
        if selector is not None:
            if not isinstance(node, (list, tuple)):
                raise MetafileError(f'{key}: {where} is not a list')
            matches = [item for item in node if isinstance(item, dict)
                       and _type_name(item.get('type')) == selector.group(1)]
            if len(matches) != 1:
                raise MetafileError(
                    f'{key}: {len(matches)} dicts of type '
                    f'{selector.group(1)!r} in {where} (need exactly one)')
            node = matches[0]
        elif isinstance(node, (list, tuple)):
            if not segment.lstrip('-').isdigit() or not -len(
                    node) <= int(segment) < len(node):
                raise MetafileError(
                    f'{key}: {segment!r} is no index of {where} '
                    f'(a list of {len(node)})')
            node = node[int(segment)]
        elif isinstance(node, dict):
            if segment in node:
                node = node[segment]
            elif 'type' in node and depth == len(segments) - 1:
                type_name = _type_name(node['type'])
                node = registered_default(node['type'], segment, scope)
                if node is _MISSING:
                    raise MetafileError(
                        f'{key}: {where} ({type_name}) has no {segment!r} '
                        'and its registered type has no default for it')
            else:
                raise MetafileError(f'{key}: {where} has no {segment!r} '
                                    f'(keys: {sorted(node)})')
        else:
            raise MetafileError(f'{key}: {where} is a '
                                f'{type(node).__name__}, not a dict or list')
    return node


def _type_name(value: Any) -> Any:
    return value.__name__ if inspect.isclass(value) else value


def values_equal(actual: Any, expected: Any) -> bool:
    """Exact for strings / bools / None, ``REL_TOL`` for numbers, element by
    element for lists and tuples, key by key for dicts."""
    if isinstance(expected, bool) or isinstance(actual, bool):
        return actual is expected
    if isinstance(expected, (int, float)) and isinstance(actual,
                                                         (int, float)):
        return math.isclose(actual, expected, rel_tol=REL_TOL, abs_tol=0.0)
    if isinstance(expected, (list, tuple)) and isinstance(actual,
                                                          (list, tuple)):
        return len(actual) == len(expected) and all(
            values_equal(a, e) for a, e in zip(actual, expected))
    if isinstance(expected, dict) and isinstance(actual, dict):
        return set(actual) == set(expected) and all(
            values_equal(actual[k], expected[k]) for k in expected)
    return _type_name(actual) == expected


def config_epochs_and_batch(cfg: Config, config_path: str
                            ) -> Tuple[Optional[int], Optional[int],
                                       Optional[int]]:
    """(max_epochs, max_iters, total batch) of a config: the total batch is
    N × B of the file name's ``NxbB``, and B must be the dataloader's."""
    train_cfg = cfg.get('train_cfg') or {}
    match = _GPUS_X_BATCH.search(osp.basename(config_path))
    total = None
    if match is not None:
        gpus, per_gpu = int(match.group(1)), int(match.group(2))
        loader_batch = (cfg.get('train_dataloader') or {}).get('batch_size')
        total = gpus * per_gpu if loader_batch == per_gpu else -1
    return train_cfg.get('max_epochs'), train_cfg.get('max_iters'), total


def check_record(record: Dict[str, Any], cfg: Config,
                 config_path: str) -> List[str]:
    """Every difference between a loaded config and its metafile record.

    Args:
        record (dict): one entry of a metafile's ``Models``.
        cfg (Config): the record's config, loaded.
        config_path (str): its file (the name's ``NxbB`` is checked).

    Returns:
        list[str]: ``'<Name>: <what differs>'`` lines; empty when equal.
    """
    name = record.get('Name')
    scope = cfg.get('default_scope', 'mmpretrain')
    problems = []
    metadata = record.get('Metadata') or {}
    epochs, iters, total = config_epochs_and_batch(cfg, config_path)
    for field, actual in (('Epochs', epochs), ('Iterations', iters),
                          ('Batch Size', total)):
        if field in metadata and not values_equal(actual, metadata[field]):
            problems.append(f'{name}: Metadata.{field} = {metadata[field]!r}'
                            f' but the config has {actual!r}'
                            + (' (-1: the dataloader batch differs from the '
                               "name's NxbB)" if actual == -1 else ''))
    if 'Epochs' not in metadata and 'Iterations' not in metadata:
        problems.append(f'{name}: Metadata needs Epochs or Iterations')
    if 'Batch Size' not in metadata:
        problems.append(f'{name}: Metadata needs Batch Size')
    for item in record.get('Hyper-parameters') or []:
        missing = {'Key', 'Value', 'Source'} - set(item)
        if missing:
            problems.append(f'{name}: hyper-parameter {item!r} lacks '
                            f'{sorted(missing)}')
            continue
        try:
            actual = resolve_key(cfg, item['Key'], scope)
        except MetafileError as error:
            problems.append(f'{name}: {error}')
            continue
        if isinstance(actual, ConfigDict):
            actual = actual.to_dict()
        if not values_equal(actual, item['Value']):
            problems.append(
                f"{name}: {item['Key']} = {actual!r} in the config, "
                f"{item['Value']!r} in the record ({item['Source']})")
    return problems


def check_record_fields(record: Dict[str, Any],
                        collections: Iterable[str]) -> List[str]:
    """Structural problems of one record (fields, results, config link)."""
    name = record.get('Name', '<no Name>')
    problems = [f'{name}: lacks {field!r}' for field in RECORD_FIELDS
                if field not in record]
    if record.get('In Collection') not in set(collections):
        problems.append(f"{name}: In Collection "
                        f"{record.get('In Collection')!r} is not a "
                        'Collection of its metafile')
    if ('Config' in record) == ('Not Provided' in record):
        problems.append(f'{name}: needs exactly one of Config / '
                        'Not Provided')
    if 'Not Provided' in record and not str(record['Not Provided']).strip():
        problems.append(f'{name}: Not Provided needs the reason')
    if 'Config' in record and osp.splitext(osp.basename(
            str(record['Config'])))[0] != name:
        problems.append(f"{name}: Name must be the stem of its Config "
                        f"{record['Config']!r}")
    results = record.get('Results')
    if not isinstance(results, list) or not results:
        problems.append(f'{name}: Results must be a non-empty list')
    else:
        for result in results:
            metrics = (result or {}).get('Metrics')
            if not {'Task', 'Dataset', 'Metrics'} <= set(result or {}) \
                    or not isinstance(metrics, dict) or not metrics or \
                    not all(isinstance(v, (int, float))
                            for v in metrics.values()):
                problems.append(f'{name}: a result needs Task, Dataset and '
                                f'Metrics {{name: number}}, got {result!r}')
    return problems


def check_metafile(path: str, repo_root: Optional[str] = None) -> List[str]:
    """Every problem of one ``metafile.yml``: record fields, and each
    config's values against its record.

    Args:
        path (str): the metafile.
        repo_root (str, optional): where ``Config`` paths start; defaults to
            two folders above the metafile (``configs/<method>/``).

    Returns:
        list[str]: problems, each naming the record; empty when all agree.
    """
    repo_root = repo_root or osp.dirname(osp.dirname(osp.dirname(
        osp.abspath(path))))
    data = load_metafile(path)
    collections = [c.get('Name') for c in data['Collections']]
    problems = []
    for collection in data['Collections']:
        paper = collection.get('Paper') or {}
        if not collection.get('Name') or not paper.get('Title') or \
                not paper.get('URL'):
            problems.append(f'{path}: a Collection needs Name and Paper '
                            f'Title / URL, got {collection!r}')
    names = [record.get('Name') for record in data['Models']]
    for duplicate in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f'{path}: record {duplicate!r} appears twice')
    for record in data['Models']:
        problems += check_record_fields(record, collections)
        if 'Config' not in record:
            continue
        config_path = osp.join(repo_root, str(record['Config']))
        if not osp.isfile(config_path):
            problems.append(f"{record.get('Name')}: Config "
                            f"{record['Config']!r} does not exist")
            continue
        problems += check_record(record, Config.fromfile(config_path),
                                 config_path)
    return problems
