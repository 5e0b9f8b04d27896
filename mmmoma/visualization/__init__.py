"""Pictures of what pre-training does: masks, folds, chunks; curves."""
from .masking import (MASKED, VISIBLE, MaskingFigure, Panel, group_colours,
                      masking_panels, patch_roles, plan_panel,
                      render_masking_figure)

__all__ = [
    'MASKED', 'VISIBLE', 'MaskingFigure', 'Panel', 'group_colours',
    'masking_panels', 'patch_roles', 'render_masking_figure',
    'plan_panel'
]
