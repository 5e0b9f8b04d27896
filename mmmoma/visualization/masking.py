"""Which patches each encoder of a pre-training algorithm sees.

:func:`masking_panels` asks a built model for one batch's masks through the
model's *own* masking methods, the ones its ``loss`` calls (MOMA
``student_split``, SdAE ``sample_tokens``, MimCo ``generate_mask`` /
``student_mask``, M-MoCo / M-BYOL ``chunk_ids``, mmpretrain MAE
``backbone.random_masking``), and turns them into panels: one image per
sample, with a role per patch:

* :data:`VISIBLE` (0): the encoder of the panel sees the patch as it is;
* ``k`` in ``1 .. K``: the patch is in group k (SdAE fold k, M-MoCo chunk
  k), drawn tinted in group k's colour;
* :data:`MASKED` (-1): no encoder of the panel sees the patch (masked for
  the student, left out of every fold / chunk), drawn grey.

:func:`render_masking_figure` draws the panels as a grid: one row per image,
one column per panel.
"""
from dataclasses import dataclass, field
from importlib import import_module
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor, nn

from ..models.selfsup.mimco import patch_size

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
# The algorithms' masks
# ---------------------------------------------------------------------------
#: (model classes, panel builder); the first entry whose classes the model
#: is an instance of wins, so subclasses come before their bases.
_PANEL_BUILDERS: List[Tuple[Callable[[], Tuple[type, ...]], Callable]] = []


def _panels_for(module: str, *class_names: str):
    """Register a panel builder for the classes ``class_names`` of
    ``module`` (imported when a model is matched, so that importing this
    module does not import mmseg)."""

    def get_classes() -> Tuple[type, ...]:
        imported = import_module(module)
        return tuple(getattr(imported, name) for name in class_names)

    def register(builder: Callable) -> Callable:
        _PANEL_BUILDERS.append((get_classes, builder))
        return builder

    return register


def patch_grid(images: Tensor, patch: int) -> Tuple[int, int]:
    """(h, w) grid of ``patch`` px patches of (B, 3, H, W) images."""
    height, width = images.shape[-2:]
    if height % patch or width % patch:
        raise ValueError(f'the input size {height}x{width} is not a multiple '
                         f'of the patch size {patch}')
    return height // patch, width // patch


def _visible_panel(title: str, images: Tensor, split_keep: Tensor,
                   grid: Tuple[int, int]) -> Panel:
    return Panel(title, images, patch_roles(images.shape[0], grid,
                                            visible=split_keep))


def _counts(grid: Tuple[int, int], num_visible: int) -> str:
    total = grid[0] * grid[1]
    return f'{num_visible} of {total} patches visible'


@_panels_for('mmmoma.models.selfsup.moma', 'MOMA')
def moma_panels(model: nn.Module, views: List[Tensor],
                generator: torch.Generator) -> MaskingFigure:
    """MOMA: each student view with its ~10 % visible patches; every
    teacher sees view 0 whole."""
    patch = patch_size(model.backbone)
    panels = []
    for view in sorted(set(model.student_views.values())):
        grid = patch_grid(views[view], patch)
        split = model.student_split(views[view].shape[0], grid[0] * grid[1],
                                    generator=generator)
        teachers = ', '.join(name for name, paired in
                             model.student_views.items() if paired == view)
        panels.append(_visible_panel(
            f'student, view {view} (for {teachers}): '
            f'{_counts(grid, split.ids_keep.shape[1])}', views[view],
            split.ids_keep, grid))
    panels.append(Panel(
        f'teachers ({", ".join(model.teachers)}): view 0, full image',
        views[0]))
    return MaskingFigure('MOMA', panels, [
        f'mask_ratio={model.mask_ratio}; student views '
        f'{dict(model.student_views)}'])


@_panels_for('mmmoma.models.selfsup.sdae', 'SdAE')
def sdae_panels(model: nn.Module, views: List[Tensor],
                generator: torch.Generator) -> MaskingFigure:
    """SdAE: the student's visible patches; the teacher's folds, each in its
    own colour (the student's patches untinted, left-out patches grey)."""
    images = views[0]
    grid = patch_grid(images, patch_size(model.backbone))
    split, tokens = model.sample_tokens(images.shape[0], grid[0] * grid[1],
                                        generator=generator)
    num_folds, fold_size = tokens.fold_ids.shape[1:]
    student = _visible_panel(
        f'student: {_counts(grid, split.ids_keep.shape[1])}', images,
        split.ids_keep, grid)
    teacher = Panel(
        f'teacher ({model.teacher_input}): {num_folds} fold(s) of '
        f'{fold_size}, {tokens.left_out.shape[1]} left out',
        images,
        patch_roles(images.shape[0], grid, visible=split.ids_keep,
                    groups=tokens.fold_ids),
        num_groups=num_folds,
        group_name='fold')
    return MaskingFigure('SdAE', [student, teacher], [
        f'mask_ratio={model.mask_ratio}, num_folds={model.num_folds}, '
        f'teacher_input={model.teacher_input!r}; teacher panel: untinted = '
        "the student's visible patches"])


@_panels_for('mmmoma.models.selfsup.mimco', 'MimCo')
def mimco_panels(model: nn.Module, views: List[Tensor],
                 generator: torch.Generator) -> MaskingFigure:
    """MimCo: the SimMIM mask on the student's patch grid (masked patches
    become the mask token); the teacher sees the image whole."""
    images = views[0]
    batch_size, _, height, width = images.shape
    mask = model.generate_mask(batch_size, (height, width),
                               generator=generator)
    student_mask = model.student_mask(mask).cpu()  # (B, h, w), True = masked
    roles = torch.where(student_mask, MASKED, VISIBLE).long()
    grid = tuple(student_mask.shape[1:])
    visible = int((~student_mask[0]).sum())
    return MaskingFigure('MimCo', [
        Panel(f'student, SimMIM mask ({model.mask_patch_size} px blocks): '
              f'{_counts(grid, visible)}', images, roles),
        Panel('teacher: full image', images),
    ], [f'mask_ratio={model.mask_ratio}, '
        f'mask_patch_size={model.mask_patch_size}, model patch '
        f'{model.model_patch_size} px'])


def _chunk_panel(model: nn.Module, title: str, images: Tensor,
                 num_chunks: int, field: str,
                 generator: torch.Generator) -> Panel:
    grid = patch_grid(images, patch_size(model.backbone))
    if num_chunks == 1:
        return Panel(f'{title}: full image', images)
    chunk_ids = model.chunk_ids(images.shape[0], grid[0] * grid[1],
                                num_chunks, generator=generator, field=field)
    left_out = grid[0] * grid[1] - chunk_ids[0].numel()
    return Panel(
        f'{title}: {num_chunks} chunks of {chunk_ids.shape[2]}' +
        (f', {left_out} left out' if left_out else ''), images,
        patch_roles(images.shape[0], grid, groups=chunk_ids),
        num_groups=num_chunks, group_name='chunk')


@_panels_for('mmmoma.models.selfsup.mmoco', 'MaskedSiamese')
def siamese_panels(model: nn.Module, views: List[Tensor],
                   generator: torch.Generator) -> MaskingFigure:
    """M-MoCo / M-BYOL: the online encoder's chunks of view 0, each in its
    own colour; the momentum encoder's input, view 1 (whole, or its m target
    chunks)."""
    if len(views) != 2:
        raise ValueError(f'{type(model).__name__} needs two views, the '
                         f'pipeline gives {len(views)}')
    name = type(model).__name__
    return MaskingFigure(name, [
        _chunk_panel(model, 'online encoder, view 0', views[0],
                     model.num_chunks, 'num_chunks', generator),
        _chunk_panel(model, 'momentum encoder (target), view 1', views[1],
                     model.num_target_chunks, 'num_target_chunks',
                     generator),
    ], [f'num_chunks={model.num_chunks}, '
        f'num_target_chunks={model.num_target_chunks}; the loss pairs view '
        "0's queries with view 1's keys and the other way round"])


@_panels_for('mmpretrain.models', 'MAE')
def mae_panels(model: nn.Module, views: List[Tensor],
               generator: torch.Generator) -> MaskingFigure:
    """mmpretrain MAE: the encoder's visible patches, drawn by
    ``MAEViT.random_masking`` (it takes no generator: it runs on a forked
    global RNG seeded from ``generator``)."""
    images = views[0]
    grid = patch_grid(images, patch_size(model.backbone))
    seed = int(torch.randint(2**31 - 1, (1, ), generator=generator))
    dummy = torch.zeros(images.shape[0], grid[0] * grid[1], 1)
    with torch.random.fork_rng(devices=[]):  # the caller's RNG is kept
        torch.manual_seed(seed)
        _, mask, _ = model.backbone.random_masking(
            dummy, model.backbone.mask_ratio)
    roles = torch.where(mask.bool(), MASKED, VISIBLE).long().view(
        images.shape[0], *grid)
    visible = int((roles[0] == VISIBLE).sum())
    return MaskingFigure('MAE', [
        Panel(f'encoder: {_counts(grid, visible)}', images, roles)
    ], [f'mask_ratio={model.backbone.mask_ratio}'])


@_panels_for('mmpretrain.models', 'MoCoV3')
def mocov3_panels(model: nn.Module, views: List[Tensor],
                  generator: torch.Generator) -> MaskingFigure:
    """mmpretrain MoCo v3: both encoders see whole views."""
    return MaskingFigure('MoCoV3', [
        Panel('base encoder: view 0, full image', views[0]),
        Panel('momentum encoder: view 1, full image', views[-1]),
    ], ['no masking: two augmented views'])


@_panels_for('mmpretrain.models', 'ImageClassifier')
@_panels_for('mmseg.models', 'EncoderDecoder')
def whole_image_panels(model: nn.Module, views: List[Tensor],
                       generator: torch.Generator) -> MaskingFigure:
    """Fine-tuning / linear probing / segmentation: the backbone sees every
    patch."""
    return MaskingFigure(type(model).__name__, [
        Panel('backbone: full image (no masking)', views[0])
    ], ['transfer config: no masking'])


def supported_models() -> List[str]:
    """Names of the model classes :func:`masking_panels` can draw."""
    names = []
    for get_classes, _ in _PANEL_BUILDERS:
        names += [cls.__name__ for cls in get_classes()]
    return names


def masking_panels(model: nn.Module, views: Sequence[Tensor],
                   generator: torch.Generator) -> MaskingFigure:
    """The figure panels of one batch: the input view, then what each
    encoder of ``model`` sees.

    Args:
        model (nn.Module): a built algorithm (weights are not used).
        views (Sequence[Tensor]): the pipeline's views, each (B, 3, H, W)
            uint8 RGB.
        generator (torch.Generator): draws the masks.

    Returns:
        MaskingFigure: the panels, the input view first.

    Raises:
        TypeError: for a model type without a panel builder.
    """
    views = list(views)
    for get_classes, builder in _PANEL_BUILDERS:
        if isinstance(model, get_classes()):
            figure = builder(model, views, generator)
            figure.panels.insert(
                0, Panel('input' if len(views) == 1 else 'view 0',
                         views[0]))
            return figure
    raise TypeError(f'no masking picture for a {type(model).__name__} '
                    f'model; supported: {", ".join(supported_models())}')


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
    'patch_roles', 'masking_panels', 'supported_models', 'compose_panel',
    'legend_entries', 'render_masking_figure', 'patch_grid'
]
