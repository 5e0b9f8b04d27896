"""``--sweep`` of tools/analysis/benchmark.py: parse ``KEY=V1,V2,...`` and
check that ``KEY`` names a field of a config before benchmarking it."""
import argparse
from typing import Any, List, Tuple

from mmengine.config import Config, DictAction

from mmmoma.utils.model_shrinking import (MISSING, constructor_default,
                                          registered_class)

#: One ``--sweep`` setting: (dotted config key, value).
SweepValue = Tuple[str, Any]


def parse_sweep(text: str) -> Tuple[str, List[Any]]:
    """Parse ``--sweep KEY=V1,V2,...`` into the key and its values.

    The values are parsed as ``--cfg-options`` parses a value (MMEngine's
    ``DictAction``: ints, floats, bools, None, strings, ``[...]`` / ``(...)``
    literals); a single value is a sweep of one. A list value is written in
    brackets: ``KEY=[[1,2],[3,4]]`` sweeps ``[1, 2]`` and ``[3, 4]``.

    Args:
        text: The argument, e.g. ``'model.num_chunks=1,2,4,8'``.

    Returns:
        The key and the list of values, e.g.
        ``('model.num_chunks', [1, 2, 4, 8])``.
    """
    key, separator, values_text = text.partition('=')
    key = key.strip()
    if not separator or not key or not values_text.strip():
        raise argparse.ArgumentTypeError(
            f'--sweep: expected KEY=V1,V2,... (e.g. '
            f'model.num_chunks=1,2,4,8), got {text!r}')
    try:
        values = DictAction._parse_iterable(values_text)
    except (AssertionError, RecursionError, ValueError) as error:
        raise argparse.ArgumentTypeError(
            f'--sweep: cannot parse the values {values_text!r} of {key} '
            f'(write lists in brackets: [[1,2],[3,4]]): {error!r}') from error
    values = list(values) if isinstance(values, (list, tuple)) else [values]
    texts = [repr(value) for value in values]
    if len(set(texts)) != len(texts):
        raise argparse.ArgumentTypeError(
            f'--sweep: the values of {key} repeat: {values!r}')
    return key, values


def check_config_key(cfg: Config, key: str, name: str) -> None:
    """Raise a ValueError unless ``key`` (dotted, as in ``--cfg-options``)
    names a field of ``cfg``.

    A field counts if the config sets it, or if it is the last part of the
    key and the dict it would go into has a registered ``type`` whose
    constructor takes it (e.g. ``model.num_chunks`` of a model that relies
    on ``MaskedMoCoV3``'s default). List items are addressed by index
    (``train_dataloader.dataset.pipeline.1.mode``).

    Args:
        cfg: The loaded config.
        key: The dotted key.
        name: The config, as named in the error.
    """
    node: Any = cfg.to_dict()
    path = ''
    parts = key.split('.')
    for depth, part in enumerate(parts):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, (list, tuple)) and part.isdigit() and \
                int(part) < len(node):
            node = node[int(part)]
        else:
            if depth == len(parts) - 1 and isinstance(node, dict):
                cls = registered_class(node.get('type'))
                if cls is not None and \
                        constructor_default(cls, part) is not MISSING:
                    return
                if cls is not None:
                    raise ValueError(
                        f'--sweep: {name} has no field {key!r}: '
                        f'{path or "the config"} sets no {part!r} and its '
                        f'type {cls.__name__} takes no such argument')
            raise ValueError(
                f'--sweep: {name} has no field {key!r}: no {part!r} in '
                f'{path or "the config"}' +
                (f' (its keys: {sorted(node)})' if isinstance(node, dict)
                 else ''))
        path = f'{path}.{part}' if path else part


def sweep_row_name(name: str, key: str, value: Any) -> str:
    """``'NAME [LAST_KEY=value]'``, e.g. ``'mmoco [num_chunks=4]'``."""
    return f'{name} [{key.rsplit(".", 1)[-1]}={value}]'
