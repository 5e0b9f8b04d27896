"""What mmmoma's hooks share: finding the model behind the runner."""
from typing import Sequence

from mmengine.model import is_model_wrapper
from torch import nn


def unwrapped_model(runner) -> nn.Module:
    """The runner's model without its DDP-style wrapper."""
    return runner.model.module if is_model_wrapper(
        runner.model) else runner.model


def algorithm_with(runner, hook: str, requirement: str,
                   attributes: Sequence[str], example: str) -> nn.Module:
    """The runner's model, unwrapped from DDP, checked for an interface.

    Args:
        runner: the MMEngine runner.
        hook (str): the hook's name, for the error message.
        requirement (str): what the hook needs of the model, e.g. ``'with
            an EMA teacher'``.
        attributes (Sequence[str]): the attributes the model must have.
        example (str): models that have them, e.g. ``'SdAE'``.

    Returns:
        nn.Module: the (unwrapped) model.

    Raises:
        TypeError: naming the first missing attribute.
    """
    model = unwrapped_model(runner)
    for attr in attributes:
        if not hasattr(model, attr):
            raise TypeError(
                f'{hook} needs a model {requirement} '
                f'({", ".join(attributes)}), e.g. {example}; '
                f'{type(model).__name__} has no {attr!r}')
    return model
