from .contrastive_views import ContrastiveViews
from .encoded_image import LoadEncodedImage

__all__ = ['ContrastiveViews', 'LoadEncodedImage']
