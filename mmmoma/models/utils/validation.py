"""Config-value checks shared by the algorithms, with messages that name the
config field, the value and the allowed values."""
import math
import numbers
from typing import Sequence


def positive_float(value: object, field: str) -> float:
    """Validate a strictly positive, finite real number.

    Args:
        value (object): the configured value.
        field (str): the config field named in the error message, e.g.
            ``'model.target_eps'``.

    Returns:
        float: ``value`` as a float.

    Raises:
        ValueError: ``value`` is a bool, not a real number, not finite
            (NaN, ±inf) or <= 0; the message is
            ``"<field>=<value!r> ...; allowed: a finite number > 0 ..."``.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        problem = f'is a {type(value).__name__}, not a number'
    elif not math.isfinite(value):
        problem = 'is not finite'
    elif value <= 0:
        problem = 'is not > 0'
    else:
        return float(value)
    raise ValueError(f'{field}={value!r} {problem}; allowed: a finite number '
                     '> 0 (int or float, not bool)')


def one_of(value: object, choices: Sequence, field: str) -> object:
    """Validate a choice.

    Args:
        value (object): the configured value.
        choices (Sequence): the allowed values.
        field (str): the config field named in the error message.

    Returns:
        object: ``value``.

    Raises:
        ValueError: ``"<field> must be one of <choices>, got <value!r>"``.
    """
    if value not in tuple(choices):
        raise ValueError(f'{field} must be one of {tuple(choices)}, got '
                         f'{value!r}')
    return value
