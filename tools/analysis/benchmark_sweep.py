"""Row names and settings of tools/analysis/benchmark.py: ``--sweep``
(parse ``KEY=V1,V2,...`` and check that ``KEY`` names a field of a config
before benchmarking it) and the speed switches of ``--cfg-options``."""
import argparse
import sys
from typing import Any, Callable, Dict, List, Optional, Tuple

from mmengine.config import Config, DictAction

from mmmoma.utils.config_tools import walk_dicts
from mmmoma.utils.data_throughput import stand_in_image_paths
from mmmoma.utils.mfu import PRECISIONS
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


def _short_dtype(value: Any) -> str:
    return {'bfloat16': 'bf16', 'float16': 'fp16', None: 'fp32',
            'float32': 'fp32'}.get(value, str(value))


def switch_label(key: str, value: Any) -> Optional[str]:
    """The name of a speed switch turned on by ``--cfg-options KEY=value``,
    or None for other options (and switches turned off):
    ``optim_wrapper.optimizer.fused=True`` -> ``'fused'``,
    ``model.teacher.dtype=bfloat16`` / ``model.teachers.<name>.teacher.dtype
    =bfloat16`` -> ``'teacher bf16'``, ``compile=True`` / ``compile.KEY=...``
    -> ``'compile'``, ``data_path=gpu`` -> ``'gpu data'``."""
    if key == 'optim_wrapper.optimizer.fused':
        return 'fused' if value else None
    if key.startswith('model.') and key.endswith('teacher.dtype'):
        return None if value is None else f'teacher {_short_dtype(value)}'
    if key == 'compile' or key.startswith('compile.'):
        return 'compile' if value or key != 'compile' else None
    if key == 'data_path':
        return 'gpu data' if value == 'gpu' else None
    return None


def switch_row_name(name: str, cfg_options: Dict[str, Any]) -> str:
    """``'NAME (fused, teacher bf16)'``: the speed switches that
    ``cfg_options`` turn on (:func:`switch_label`), each once; ``NAME``
    without any."""
    labels = [switch_label(key, value) for key, value in cfg_options.items()]
    labels = list(dict.fromkeys(label for label in labels if label))
    return f'{name} ({", ".join(labels)})' if labels else name


def speed_settings(cfg: Config, compile_flag: bool = False) -> List[str]:
    """The speed switches in effect in a loaded config (whatever set them:
    the config itself or ``--cfg-options``): ``'fused'`` (AdamW's fused
    kernel), ``'teacher bf16'`` (a frozen teacher's weights in bf16),
    ``'compile'`` (``compile`` or ``--compile``), ``'gpu data'``
    (``data_path='gpu'``)."""
    settings = []
    optimizer = cfg.get('optim_wrapper', {}).get('optimizer', {})
    if optimizer.get('fused'):
        settings.append('fused')
    teacher_dtypes = {
        node.get('dtype') for _, node in walk_dicts(cfg.get('model'), 'model')
        if 'network' in node and 'checkpoint' in node and node.get('dtype')
    }
    settings += [f'teacher {_short_dtype(dtype)}'
                 for dtype in sorted(teacher_dtypes)]
    if compile_flag or cfg.get('compile'):
        settings.append('compile')
    if cfg.get('data_path') == 'gpu':
        settings.append('gpu data')
    return settings


def add_cost_arguments(parser: argparse.ArgumentParser) -> None:
    """benchmark.py's ``--precision``, ``--amp``, ``--compile``,
    ``--data-root`` and ``--data-images``."""
    parser.add_argument(
        '--precision', choices=PRECISIONS,
        help='precision of every row, whatever the configs say (default '
        'fp32): bf16 = AutoAmpOptimWrapper (bf16 autocast, CUDA or CPU), '
        'fp16 = AmpOptimWrapper (CUDA)')
    parser.add_argument('--amp', action='store_true',
                        help='alias of --precision fp16 (mmengine '
                        'AmpOptimWrapper; needs CUDA)')
    parser.add_argument('--compile', action='store_true',
                        help='torch.compile(model.train_step) as if the '
                        "configs set compile=True (a config's own compile "
                        'dict is used as it is)')
    parser.add_argument(
        '--data-root', metavar='DIR',
        help="time each config's train pipeline on the JPEGs of "
        'DIR/train/<class>/ (make_stand_in_imagenet.py) and print images/s '
        'per CPU core and the cores per step rate (default: off, "—")')
    parser.add_argument('--data-images', type=int, default=64,
                        help='images the pipeline timing runs (default 64)')


def check_cost_arguments(args: argparse.Namespace, fail: Callable) -> None:
    """Resolve ``--amp`` into ``--precision`` and check the cost options;
    ``fail(message)`` reports an error (``parser.error``)."""
    if args.amp:
        if args.precision not in (None, 'fp16'):
            fail(f'--amp is --precision fp16; it contradicts --precision '
                 f'{args.precision}')
        print('--amp: same as --precision fp16', file=sys.stderr)
        args.precision = 'fp16'
    args.precision = args.precision or 'fp32'
    if args.precision == 'fp16' and args.device != 'cuda':
        fail("--precision fp16 / --amp needs --device cuda (mmengine's "
             'AmpOptimWrapper requires a GPU); on the CPU use bf16')
    if args.data_images < 1:
        fail(f'--data-images must be >= 1, got {args.data_images}')
    if args.data_root:
        try:
            stand_in_image_paths(args.data_root)
        except FileNotFoundError as error:
            fail(f'--data-root: {error}')
