"""What the algorithms share besides masking (``mmmoma.models.masking``)
and checkpoints (``mmmoma.checkpoints``): frozen teachers, key queues, the
momentum-target protocol, config filling, init schemes, vMF statistics."""
from .config_fill import fill_channels
from .frozen_teacher import FrozenTeacher
from .key_queue import KeyQueue
from .momentum import (MomentumTarget, WithMomentumTarget, check_unit_interval,
                       cosine_momentum, ema_update_)
from .von_mises_fisher import spherical_mean, vmf_concentration

__all__ = [
    'FrozenTeacher', 'KeyQueue', 'fill_channels', 'check_unit_interval',
    'cosine_momentum', 'ema_update_', 'MomentumTarget', 'WithMomentumTarget',
    'spherical_mean', 'vmf_concentration'
]
