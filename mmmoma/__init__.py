"""mmmoma: MOMA, SdAE, MimCo and M-MoCo for MMEngine / mmpretrain / mmseg.

Importing the package registers its components into mmpretrain's registries
(``StrictPretrained`` of :mod:`mmmoma.checkpoints` also into mmengine's root
``WEIGHT_INITIALIZERS``), registers FLOP formulas for CPU attention, and
applies the compatibility fixes of :mod:`mmmoma.compat`.
"""
from . import compat  # noqa: F401  (applied at import)
from . import checkpoints, datasets, engine, evaluation, models, utils  # noqa
from .version import __version__

__all__ = ['__version__']
