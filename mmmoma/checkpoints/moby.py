"""Take the Swin encoder out of an official MoBY release.

The MoBY release of SwinTransformer/Transformer-SSL
(``moby_swin_t_{100,300}ep_pretrained.pth``) is ``{'model': {'encoder.*',
'encoder_k.*', 'projector.*', 'projector_k.*', 'predictor.*', 'queue1',
'queue2', 'queue_ptr'}}``. The encoder is the online Swin ``encoder.*``;
the rest (:data:`MOBY_NON_ENCODER_KEY_PATTERNS`) is dropped and reported,
any other key raises :class:`CheckpointFormatError` naming it. Its official
Swin names are then mapped to mmpretrain ``SwinTransformer`` names by
:func:`.swin.swin_to_mmpretrain`.
"""
from collections import OrderedDict
from typing import Dict, List, Mapping

from mmengine.logging import print_log
from torch import Tensor

from .detect import MOBY_ENCODER_PREFIX, CheckpointFormatError
from .keys import drop_or_reject, format_keys, iter_keys, report_dropped
from .swin import swin_to_mmpretrain

__all__ = ['MOBY_NON_ENCODER_KEY_PATTERNS', 'moby_to_mmpretrain']

#: Keys of a MoBY release's ``'model'`` besides the online encoder
#: ``encoder.*``. Dropped by :func:`moby_to_mmpretrain` (and reported).
MOBY_NON_ENCODER_KEY_PATTERNS: Dict[str, str] = OrderedDict([
    ('encoder_k.*', 'MoBY momentum (target) encoder'),
    ('projector.*', 'MoBY online projector'),
    ('projector_k.*', 'MoBY momentum projector'),
    ('predictor.*', 'MoBY predictor'),
    ('queue*', 'MoBY key queues and pointer (queue1, queue2, queue_ptr)'),
])


def moby_to_mmpretrain(model: Mapping[str, Tensor],
                       *,
                       show_progress: bool = False) -> 'OrderedDict':
    """The online encoder of a MoBY ``'model'``, under mmpretrain names.

    Args:
        model (Mapping[str, Tensor]): the ``'model'`` of a MoBY release.
        show_progress (bool): show a progress bar over the keys.

    Returns:
        OrderedDict[str, Tensor]: mmpretrain ``SwinTransformer`` keys of
        ``encoder.*`` (load into ``SimMIMSwinTransformer`` with
        ``allowed_missing=('mask_token',)``).

    Raises:
        CheckpointFormatError: keys that are neither the encoder nor known
            MoBY parts, or encoder keys :func:`.swin.swin_to_mmpretrain`
            cannot map (named, the first 20 then a count).
    """
    encoder = _split_moby_encoder(model, show_progress)
    print_log(
        f'MoBY checkpoint: reading the online encoder '
        f'{MOBY_ENCODER_PREFIX}* ({len(encoder)} keys, official Swin '
        f'naming)',
        logger='current')
    return swin_to_mmpretrain(encoder)


def _split_moby_encoder(model: Mapping[str, Tensor],
                        show_progress: bool) -> 'OrderedDict':
    """Online encoder ``encoder.*`` (prefix removed) of a MoBY ``'model'``.

    Keys of :data:`MOBY_NON_ENCODER_KEY_PATTERNS` are dropped and reported;
    any other key raises :class:`CheckpointFormatError` naming it.
    """
    encoder: 'OrderedDict[str, Tensor]' = OrderedDict()
    dropped: Dict[str, List[str]] = OrderedDict()
    unknown: List[str] = []
    for key in iter_keys(model.keys(), show_progress):
        if key.startswith(MOBY_ENCODER_PREFIX):
            encoder[key[len(MOBY_ENCODER_PREFIX):]] = model[key]
            continue
        drop_or_reject(key, MOBY_NON_ENCODER_KEY_PATTERNS, dropped, unknown)
    if unknown:
        raise CheckpointFormatError(
            f'{len(unknown)} key(s) of the MoBY checkpoint are neither the '
            f'online encoder ({MOBY_ENCODER_PREFIX}*) nor known MoBY '
            f'parts ({", ".join(MOBY_NON_ENCODER_KEY_PATTERNS)}): '
            f'{format_keys(unknown)}')
    report_dropped(dropped, MOBY_NON_ENCODER_KEY_PATTERNS)
    return encoder
