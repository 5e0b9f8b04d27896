from .contrastive_views import ContrastiveViews

__all__ = ['ContrastiveViews']
