"""Chunking savings of models that encode their views in chunks (M-MoCo,
M-BYOL: a built model with a ``num_chunks`` attribute), from the rows of
tools/analysis/benchmark.py, next to the M-MoCo paper's claim.

Used by benchmark.py after its table; see :func:`format_chunking_summary`.
"""
import textwrap
from typing import Any, Dict, List, Sequence

from table_format import relative, render_table

#: What the M-MoCo paper says chunking saves (abstract; Fig. 3a).
PAPER_CHUNKING_CLAIM = (
    'M-MoCo paper (abstract, Fig. 3a): "for each epoch we save around 20% '
    'FLOPs" vs MoCo v3; the attention module\'s FLOPs drop steadily with n, '
    'the whole block\'s (Att + FFN) "somewhat less"')
#: Name of the row the summary compares with (benchmark.py's MoCo v3 row).
MOCOV3_ROW = 'mmpretrain MoCo v3'


def chunking_groups(rows: Sequence[Any]) -> List[List[Any]]:
    """The rows of chunked models (``num_chunks`` not None) grouped by
    config, model type, m and cfg-options (rows that differ only in n), in
    order of appearance."""
    groups: Dict[str, List[Any]] = {}
    for row in rows:
        if row.num_chunks is not None:
            key = repr((row.config, row.model_type, row.num_target_chunks,
                        sorted(row.cfg_options.items())))
            groups.setdefault(key, []).append(row)
    return list(groups.values())


def _percent(fraction: float) -> str:
    return f'{100.0 * fraction:.1f}%'


def _percent_change(fraction: float) -> str:
    return f'{100.0 * fraction:+.1f}%'


def explain_chunking(result: Any, single: Any,
                     chunked: Any) -> str:
    """Why chunking saves what it saves, from the measured numbers.

    Uses: the attention share of F (a plain ViT forward at 1 + N tokens);
    the attention share of the n = 1 step, split into the online encoder's
    (1.5 x the attention backward FLOPs: only the trained encoder is
    back-propagated, backward = 2 x forward) and the rest (the momentum
    encoder's forward); and, for the ``chunked`` row, the change of the
    attention FLOPs and of everything else (the extra CLS token of every
    chunk through the encoder, the n queries through projector, predictor
    and loss), both relative to the n = 1 step.

    Args:
        result: The run (for F and the arch).
        single: The n = 1 row.
        chunked: A row of the same config with n > 1.

    Returns:
        One paragraph, unwrapped.
    """
    settings = result.settings
    dims = settings.arch['embed_dims']
    linear_macs = (4 * dims * dims +
                   2 * dims * settings.arch['feedforward_channels'])
    tokens = (settings.img_size // settings.patch_size)**2 + 1
    step = single.train_gflops_per_image
    online = 1.5 * single.attention_backward_gflops_per_image
    target = single.attention_gflops_per_image - online
    attention_change = (chunked.attention_gflops_per_image -
                        single.attention_gflops_per_image) / step
    other_change = (
        (chunked.train_gflops_per_image - chunked.attention_gflops_per_image)
        - (step - single.attention_gflops_per_image)) / step
    net_change = chunked.train_gflops_per_image / step - 1.0
    m = single.num_target_chunks
    target_input = 'the full view, m=1' if m == 1 else \
        f'{m} chunks, m={m}'
    n = chunked.num_chunks
    num_patches = tokens - 1
    left_over = num_patches % n
    dropped = (f', and the {left_over} patches per view left over by '
               f'{num_patches} = {n} × {num_patches // n} + {left_over} are '
               'not encoded') if left_over else ''
    forward_share = result.reference_attention_gflops / \
        result.reference_forward_gflops
    step_share = single.attention_gflops_per_image / step
    return (
        f'Why the gap: the attention matmuls (Q·Kᵀ, P·V: 2·S²·C '
        f'multiply-adds per block, vs {linear_macs / dims**2:.3g}·S·C² for '
        f'the projections and MLP) are {_percent(forward_share)} of a plain '
        f'ViT forward at S={tokens} tokens and {_percent(step_share)} of '
        f'the n=1 step; chunking shrinks only the online encoder\'s '
        f'{_percent(online / step)} of the step (the momentum encoder\'s '
        f'{_percent(target / step)} stays: it sees {target_input}). n={n} '
        f'changes the attention FLOPs by {_percent_change(attention_change)} '
        f'of the n=1 step and everything else by '
        f'{_percent_change(other_change)}: its {n} CLS tokens per view (one '
        f'per chunk, {n - 1} more than n=1) and {n} queries per view go '
        f'through the encoder, the heads and the loss{dropped}. Net '
        f'{_percent_change(net_change)}.')


def format_chunking_summary(result: Any) -> str:
    """The chunked rows' savings next to the M-MoCo paper's claim.

    For every group of rows that differ only in n (see
    :func:`chunking_groups`): n, m, the step and attention FLOPs relative to
    the group's n = 1 row and to the mmpretrain MoCo v3 row, and
    :func:`explain_chunking` for the largest n. Empty if the run has no such
    rows.
    """
    groups = chunking_groups(result.rows)
    if not groups:
        return ''
    mocov3 = next((row for row in result.rows if row.name == MOCOV3_ROW),
                  None)
    lines = ['', 'Chunking savings (per image, one training step), measured '
             'vs claimed:', '  ' + PAPER_CHUNKING_CLAIM + '.']
    header = ('model', 'n', 'm', 'step vs n=1', 'attn vs n=1',
              'step vs MoCo v3', 'attn vs MoCo v3')
    for rows in groups:
        single = next((row for row in rows if row.num_chunks == 1), None)
        body = [(row.name, str(row.num_chunks), str(row.num_target_chunks),
                 relative(row.train_gflops_per_image,
                          single and single.train_gflops_per_image),
                 relative(row.attention_gflops_per_image,
                          single and single.attention_gflops_per_image),
                 relative(row.train_gflops_per_image,
                          mocov3 and mocov3.train_gflops_per_image),
                 relative(row.attention_gflops_per_image,
                          mocov3 and mocov3.attention_gflops_per_image))
                for row in rows]
        lines += render_table(header, body, indent='  ')
        chunked = max((row for row in rows if row.num_chunks > 1),
                      key=lambda row: row.num_chunks, default=None)
        if single is None:
            lines.append('  (no n = 1 row: add --sweep model.num_chunks='
                         '1,... to measure the savings against n = 1)')
        elif chunked is not None:
            lines += textwrap.wrap(
                explain_chunking(result, single, chunked), width=79,
                initial_indent='  ', subsequent_indent='  ')
    return '\n'.join(lines)
