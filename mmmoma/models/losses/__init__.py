"""Loss functions and loss weighting."""
from .info_nce import queue_info_nce
from .siamese import (contrastive_labels, multi_query_byol_loss,
                      multi_query_info_nce)
from .weighting import UncertaintyWeighting

__all__ = [
    'UncertaintyWeighting', 'queue_info_nce', 'contrastive_labels',
    'multi_query_info_nce', 'multi_query_byol_loss'
]
