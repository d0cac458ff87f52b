"""Plain-text tables (seed summary, `seed --list`, `list`): column widths from the data (imports nothing slow)."""

from __future__ import annotations

from collections.abc import Sequence


def format_table(rows: Sequence[tuple[str, ...]], *, right: frozenset[int] = frozenset()) -> list[str]:
    """Rows (the first is the header) as lines of columns two spaces apart; columns in `right` are
    right-aligned (numbers), the others left-aligned."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]

    def cell(i: int, text: str) -> str:
        return text.rjust(widths[i]) if i in right else text.ljust(widths[i])

    return ["  ".join(cell(i, text) for i, text in enumerate(row)).rstrip() for row in rows]
