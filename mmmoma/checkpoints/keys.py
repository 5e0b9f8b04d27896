"""Walk, file and name the keys of a checkpoint's state dict.

The converters (:mod:`.timm_vit`, :mod:`.swin`, :mod:`.moby`) share these:
iterating over the keys (with a progress bar if asked), renaming a key by
the first rule that matches it, filing a key that no
renaming rule maps under the drop pattern it matches (or as unknown),
logging the dropped keys by name, and naming keys in error messages (the
first 20, then a count).
"""
import fnmatch
import re
from typing import (Dict, Iterable, Iterator, List, Mapping, Optional,
                    Sequence, Tuple)

from mmengine.logging import print_log
from mmengine.utils import ProgressBar

#: Keys named in a message; the rest are counted.
MAX_KEYS_IN_MESSAGE = 20


def format_keys(keys: Sequence[str]) -> str:
    """``'a', 'b', ... (+N more)`` for error messages.

    Args:
        keys (Sequence[str]): the keys to name.

    Returns:
        str: the first :data:`MAX_KEYS_IN_MESSAGE` keys (``repr``), and a
        count of the rest.
    """
    keys = list(keys)
    shown = ', '.join(repr(key) for key in keys[:MAX_KEYS_IN_MESSAGE])
    if len(keys) > MAX_KEYS_IN_MESSAGE:
        shown += f', ... (+{len(keys) - MAX_KEYS_IN_MESSAGE} more)'
    return shown


def iter_keys(keys: Iterable[str], show_progress: bool) -> Iterator[str]:
    """Iterate over ``keys``, with an mmengine progress bar if asked.

    Args:
        keys (Iterable[str]): state-dict keys.
        show_progress (bool): show a progress bar.

    Yields:
        str: each key, in order.
    """
    keys = list(keys)
    progress = ProgressBar(len(keys)) if show_progress and keys else None
    for key in keys:
        yield key
        if progress is not None:
            progress.update()
    if progress is not None:
        progress.file.write('\n')


def rename_key(key: str,
               rules: Sequence[Tuple['re.Pattern', str]]) -> Optional[str]:
    """Rename ``key`` by the first rule whose pattern it fully matches.

    Args:
        key (str): a state-dict key.
        rules (Sequence[tuple[re.Pattern, str]]): (compiled pattern,
            ``re.sub`` replacement) pairs, tried in order.

    Returns:
        str | None: the new name, or None if no rule matches.
    """
    for pattern, replacement in rules:
        if pattern.fullmatch(key):
            return pattern.sub(replacement, key)
    return None


def _matching_pattern(key: str,
                      patterns: Mapping[str, str]) -> Optional[str]:
    """The entry of ``patterns`` (fnmatch) that ``key`` matches, if any."""
    for pattern in patterns:
        if fnmatch.fnmatchcase(key, pattern):
            return pattern
    return None


def drop_or_reject(key: str, patterns: Mapping[str, str],
                   dropped: Dict[str, List[str]],
                   unknown: List[str]) -> None:
    """File a key that no renaming rule maps.

    Args:
        key (str): the unmapped key.
        patterns (Mapping[str, str]): fnmatch pattern -> what it matches;
            keys matching one are dropped.
        dropped (dict[str, list[str]]): filled in place: the key is appended
            under the first pattern it matches.
        unknown (list[str]): filled in place: the key is appended here when
            it matches no pattern.
    """
    pattern = _matching_pattern(key, patterns)
    if pattern is not None:
        dropped.setdefault(pattern, []).append(key)
    else:
        unknown.append(key)


def report_dropped(dropped: Mapping[str, Sequence[str]],
                   patterns: Mapping[str, str],
                   what: str = 'non-encoder') -> None:
    """Log the keys dropped per pattern, by name (first 20, then a count).

    Args:
        dropped (Mapping[str, Sequence[str]]): pattern -> dropped keys, as
            filled by :func:`drop_or_reject`.
        patterns (Mapping[str, str]): pattern -> what it matches.
        what (str): kind of keys, for the message.
    """
    for pattern, keys in dropped.items():
        print_log(
            f'Dropped {len(keys)} {what} key(s) matching {pattern!r} '
            f'({patterns[pattern]}): {format_keys(keys)}',
            logger='current')
