"""Loss functions and loss weighting."""
from .feature_regression import (cosine_distance, fold_cosine_distance,
                                 normalize_target, smooth_l1_alignment,
                                 within_image_token_cosine)
from .info_nce import queue_info_nce
from .siamese import (contrastive_labels, multi_query_byol_loss,
                      multi_query_info_nce)
from .weighting import UncertaintyWeighting

__all__ = [
    'UncertaintyWeighting', 'queue_info_nce', 'contrastive_labels',
    'multi_query_info_nce', 'multi_query_byol_loss', 'smooth_l1_alignment',
    'normalize_target', 'cosine_distance', 'fold_cosine_distance',
    'within_image_token_cosine'
]
