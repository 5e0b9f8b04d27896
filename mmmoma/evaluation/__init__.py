from .knn import (extract_features, extract_raw_pixel_features, pool_features,
                  weighted_knn_predict, weighted_knn_top1)

__all__ = [
    'weighted_knn_predict', 'weighted_knn_top1', 'extract_features',
    'extract_raw_pixel_features', 'pool_features'
]
