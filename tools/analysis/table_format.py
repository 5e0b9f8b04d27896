"""Plain-text tables of the analysis tools (benchmark, chunking summary)."""
from typing import List, Optional, Sequence


def relative(value: float, reference: Optional[float]) -> str:
    """``value`` relative to ``reference`` as ``'+x.x%'``; '-' without a
    reference."""
    if reference is None or reference == 0:
        return '-'
    return f'{100.0 * (value / reference - 1.0):+.1f}%'


def render_table(header: Sequence[str],
                 body: Sequence[Sequence[str]],
                 indent: str = '') -> List[str]:
    """Rule, header, rule, body, rule; first column left-aligned, the others
    right-aligned."""
    widths = [
        max(len(str(line[column])) for line in (header, *body))
        for column in range(len(header))
    ]

    def render(cells: Sequence[str]) -> str:
        return indent + '  '.join(
            cell.ljust(width) if column == 0 else cell.rjust(width)
            for column, (cell, width) in enumerate(zip(cells, widths)))

    rule = indent + '  '.join('-' * width for width in widths)
    return [rule, render(header), rule] + [render(line)
                                           for line in body] + [rule]
