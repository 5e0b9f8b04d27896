"""Which patches each encoder of a pre-training algorithm sees.

:func:`masking_panels` asks a built model for one batch's masks through the
masking protocol: ``model.encoder_inputs(views, generator)`` returns, per
encoder, the :class:`~mmmoma.models.masking.MaskPlan` drawn by the model's
own mask generator (the one its ``loss`` calls). Models without it are drawn
by duck typing: an mmpretrain MAE (``backbone.random_masking``), or whole
views (MoCo v3, classifiers, segmentors). Panels: one image per sample,
with a role per patch:

* :data:`VISIBLE` (0): the encoder of the panel sees the patch as it is;
* ``k`` in ``1 .. K``: the patch is in group k (SdAE fold k, M-MoCo chunk
  k), drawn tinted in group k's colour;
* :data:`MASKED` (-1): no encoder of the panel sees the patch (masked for
  the student, left out of every fold / chunk), drawn grey.

:func:`render_masking_figure` draws the panels as a grid: one row per image,
one column per panel.
"""
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor, nn

from ..models.masking import EncoderInput, MaskPlan, backbone_grid

#: role of a patch no encoder of the panel sees
MASKED = -1
#: role of a patch the encoder of the panel sees as it is
VISIBLE = 0
#: RGB (0..1) of MASKED patches
MASKED_GREY = (0.55, 0.55, 0.55)
#: weight of a group's colour in a tinted patch
TINT = 0.55


@dataclass
class Panel:
    """One column of the figure: what one encoder sees of each image.

    Attributes:
        title (str): column title.
        images (Tensor): (B, 3, H, W) uint8 RGB, the view the panel shows.
        roles (Tensor | None): (B, h, w) long patch roles (:data:`VISIBLE`,
            :data:`MASKED`, group ``1..num_groups``); None: the whole image,
            no patch grid.
        num_groups (int): K, the number of groups (colours) in ``roles``.
        group_name (str): what a group is (``'fold'``, ``'chunk'``).
    """
    title: str
    images: Tensor
    roles: Optional[Tensor] = None
    num_groups: int = 0
    group_name: str = 'group'

    def __post_init__(self) -> None:
        if self.roles is None:
            return
        low, high = int(self.roles.min()), int(self.roles.max())
        if low < MASKED or high > self.num_groups:
            raise ValueError(
                f'panel {self.title!r}: roles must lie in [{MASKED}, '
                f'{self.num_groups}], got [{low}, {high}]')


@dataclass
class MaskingFigure:
    """The panels of one config's figure and the legend entries they use.

    Attributes:
        algorithm (str): the model's class name.
        panels (list[Panel]): the columns, the input view first.
        notes (list[str]): one line each, printed under the figure.
    """
    algorithm: str
    panels: List[Panel]
    notes: List[str] = field(default_factory=list)


def group_colours(num_groups: int) -> np.ndarray:
    """``num_groups`` distinct colours, one per fold / chunk, none of them a
    grey (grey means masked).

    Args:
        num_groups (int): K >= 0.

    Returns:
        np.ndarray: (K, 3) RGB in [0, 1], row k-1 the colour of group k:
        matplotlib's ``tab10`` without its grey up to 9 groups, ``tab20``
        without its greys up to 18, evenly spaced hues beyond.
    """
    if num_groups < 0:
        raise ValueError(f'num_groups must be >= 0, got {num_groups}')
    from matplotlib import colormaps
    from matplotlib.colors import hsv_to_rgb
    for name in ('tab10', 'tab20'):
        palette = np.asarray(colormaps[name].colors)
        palette = palette[np.ptp(palette, axis=1) > 0.1]  # drop the greys
        if num_groups <= len(palette):
            return palette[:num_groups].reshape(num_groups, 3)
    hues = np.arange(num_groups) / num_groups
    return hsv_to_rgb(
        np.stack([hues, np.full_like(hues, 0.75),
                  np.full_like(hues, 0.95)], axis=1))


def patch_roles(batch_size: int,
                grid: Tuple[int, int],
                visible: Optional[Tensor] = None,
                groups: Optional[Tensor] = None) -> Tensor:
    """The role map of patch index sets.

    Args:
        batch_size (int): B.
        grid (tuple[int, int]): (h, w) patch grid.
        visible (Tensor, optional): (B, V) indices of :data:`VISIBLE`
            patches.
        groups (Tensor, optional): (B, K, L) indices of group k+1's patches;
            set after ``visible``, so a patch in both is in its group.

    Returns:
        Tensor: (B, h, w) long, :data:`MASKED` where no index points.
    """
    roles = torch.full((batch_size, grid[0] * grid[1]), MASKED,
                       dtype=torch.long)
    if visible is not None:
        roles.scatter_(1, visible.cpu(), VISIBLE)
    if groups is not None:
        for group in range(groups.shape[1]):
            roles.scatter_(1, groups[:, group].cpu(), group + 1)
    return roles.view(batch_size, *grid)


# ---------------------------------------------------------------------------
# Plans -> panels
# ---------------------------------------------------------------------------
def plan_panel(encoder: EncoderInput, images: Tensor) -> Panel:
    """The panel of one encoder's plan.

    Args:
        encoder (EncoderInput): from ``model.encoder_inputs``.
        images (Tensor): (B, 3, H, W) uint8, the encoder's view.

    Returns:
        Panel: ``show='visible'``: one group: its patches :data:`VISIBLE`
        (the whole image when it is every patch); G > 1 groups: group k in
        colour k. ``show='targets'``: the target groups in colours, the
        visible patches untinted. Everything else :data:`MASKED`.
    """
    plan: Optional[MaskPlan] = encoder.plan
    if plan is None:
        return Panel(encoder.title, images)
    batch_size, total = images.shape[0], plan.num_patches
    if encoder.show == 'targets':
        groups = plan.targets
        return Panel(encoder.title, images,
                     patch_roles(batch_size, plan.grid,
                                 visible=plan.visible_ids, groups=groups),
                     num_groups=groups.shape[1],
                     group_name=encoder.group_name)
    if plan.num_groups == 1:
        if plan.masks_nothing:
            return Panel(f'{encoder.title}: full image', images)
        visible = plan.visible_ids.shape[1]
        return Panel(f'{encoder.title}: {visible} of {total} patches visible',
                     images, patch_roles(batch_size, plan.grid,
                                         visible=plan.visible_ids))
    num_groups, group_size = plan.visible.shape[1:]
    left_out = plan.left_out.shape[1]
    return Panel(
        f'{encoder.title}: {num_groups} {encoder.group_name}s of '
        f'{group_size}' + (f', {left_out} left out' if left_out else ''),
        images, patch_roles(batch_size, plan.grid, groups=plan.visible),
        num_groups=num_groups, group_name=encoder.group_name)


def mae_encoder_inputs(model: nn.Module, views: List[Tensor],
                       generator: torch.Generator) -> tuple:
    """mmpretrain MAE: the encoder's visible patches, drawn by
    ``MAEViT.random_masking`` (it takes no generator: it runs on a forked
    global RNG seeded from ``generator``, the caller's RNG is kept)."""
    images = views[0]
    grid = backbone_grid(model.backbone, images)
    seed = int(torch.randint(2**31 - 1, (1, ), generator=generator))
    dummy = torch.zeros(images.shape[0], grid[0] * grid[1], 1)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        _, mask, _ = model.backbone.random_masking(
            dummy, model.backbone.mask_ratio)
    order = torch.argsort(mask.long(), dim=1, stable=True)
    num_visible = int((mask[0] == 0).sum())
    plan = MaskPlan(order[:, None, :num_visible], order[:, None,
                                                        num_visible:],
                    order[:, :0], grid)
    return [EncoderInput('encoder', 0, plan)], [
        f'mask_ratio={model.backbone.mask_ratio}']


def whole_view_inputs(model: nn.Module, views: List[Tensor]) -> tuple:
    """Models that mask nothing (MoCo v3, fine-tuning, segmentation): each
    view whole."""
    if len(views) == 1:
        return [EncoderInput('backbone: full image (no masking)', 0)], [
            'no masking']
    return [EncoderInput(f'encoder: view {view}, full image', view)
            for view in range(len(views))], [
                f'no masking: {len(views)} augmented views']


def masking_panels(model: nn.Module, views: Sequence[Tensor],
                   generator: torch.Generator) -> MaskingFigure:
    """The figure panels of one batch: the input view, then what each
    encoder of ``model`` sees.

    Args:
        model (nn.Module): a built model (weights are not used).
        views (Sequence[Tensor]): the pipeline's views, each (B, 3, H, W)
            uint8 RGB.
        generator (torch.Generator): draws the masks.

    Returns:
        MaskingFigure: the panels, the input view first.

    Raises:
        TypeError: for a model that is neither an algorithm with
            ``encoder_inputs`` nor a model with a ``backbone``.
    """
    views = list(views)
    if hasattr(model, 'encoder_inputs'):
        encoders, notes = model.encoder_inputs(views, generator)
    elif hasattr(getattr(model, 'backbone', None), 'random_masking'):
        encoders, notes = mae_encoder_inputs(model, views, generator)
    elif isinstance(getattr(model, 'backbone', None), nn.Module):
        encoders, notes = whole_view_inputs(model, views)
    else:
        raise TypeError(
            f'no masking picture for a {type(model).__name__} model: it '
            'has neither encoder_inputs(views, generator) (the masking '
            'protocol of mmmoma.models.masking) nor a backbone')
    panels = [Panel('input' if len(views) == 1 else 'view 0', views[0])]
    panels += [plan_panel(encoder, views[encoder.view])
               for encoder in encoders]
    return MaskingFigure(type(model).__name__, panels, list(notes))


# ---------------------------------------------------------------------------
# Drawing
# ---------------------------------------------------------------------------
def compose_panel(panel: Panel, index: int) -> np.ndarray:
    """Image ``index`` of a panel with its patch roles drawn in.

    Returns:
        np.ndarray: (H, W, 3) float RGB in [0, 1]: VISIBLE patches as they
        are, group k tinted with ``group_colours(K)[k - 1]``, MASKED grey.
    """
    image = panel.images[index].permute(1, 2, 0).cpu().numpy() / 255.0
    if panel.roles is None:
        return image
    roles = panel.roles[index].cpu().numpy()
    height, width = image.shape[:2]
    rows, cols = roles.shape
    # nearest upsampling of the role map to pixels
    pixel_roles = roles[np.arange(height) * rows // height][:, np.arange(
        width) * cols // width]
    out = image.copy()
    out[pixel_roles == MASKED] = MASKED_GREY
    colours = group_colours(panel.num_groups)
    for group in range(1, panel.num_groups + 1):
        where = pixel_roles == group
        out[where] = (1 - TINT) * image[where] + TINT * colours[group - 1]
    return out


def legend_entries(panels: Sequence[Panel]) -> List[Tuple[str, tuple]]:
    """(label, RGB) of every role the panels use, for the legend."""
    entries = []
    used = {int(role) for panel in panels if panel.roles is not None
            for role in panel.roles.unique()}
    if VISIBLE in used:
        entries.append(('visible', (1.0, 1.0, 1.0)))
    if MASKED in used:
        entries.append(('masked / left out', MASKED_GREY))
    for panel in panels:
        colours = group_colours(panel.num_groups)
        for group in range(1, panel.num_groups + 1):
            label = f'{panel.group_name} {group}'
            if label not in [name for name, _ in entries]:
                entries.append((label, tuple(colours[group - 1])))
    return entries


def render_masking_figure(figure: MaskingFigure, title: str,
                          out_file: str) -> None:
    """Draw the panels as a grid (rows: images, columns: panels) to PNG.

    Args:
        figure (MaskingFigure): from :func:`masking_panels`.
        title (str): figure title (e.g. the config name).
        out_file (str): PNG path.
    """
    import matplotlib
    matplotlib.use('Agg')
    import textwrap

    from matplotlib import pyplot as plt
    from matplotlib.patches import Patch
    panels = figure.panels
    num_rows = panels[0].images.shape[0]
    num_cols = len(panels)
    fig, axes = plt.subplots(
        num_rows, num_cols, figsize=(2.4 * num_cols, 2.4 * num_rows + 1.4),
        squeeze=False)
    for col, panel in enumerate(panels):
        for row in range(num_rows):
            axis = axes[row][col]
            axis.imshow(compose_panel(panel, row), interpolation='nearest')
            axis.set_xticks([])
            axis.set_yticks([])
        axes[0][col].set_title(
            textwrap.fill(panel.title, 30), fontsize=7)
    fig.suptitle(textwrap.fill(f'{figure.algorithm}: {title}', 90),
                 fontsize=9)
    if figure.notes:
        fig.text(0.5, 0.94, textwrap.fill('; '.join(figure.notes), 120),
                 ha='center', va='top', fontsize=6)
    entries = legend_entries(panels)
    if entries:
        fig.legend(
            handles=[Patch(facecolor=colour, edgecolor='black', label=label)
                     for label, colour in entries],
            loc='lower center', ncol=min(6, len(entries)), fontsize=7,
            frameon=False)
    fig.tight_layout(rect=(0, 0.1, 1, 0.9))
    fig.savefig(out_file, dpi=100)
    plt.close(fig)


__all__ = [
    'MASKED', 'VISIBLE', 'Panel', 'MaskingFigure', 'group_colours',
    'patch_roles', 'masking_panels', 'plan_panel', 'compose_panel',
    'legend_entries', 'render_masking_figure'
]
