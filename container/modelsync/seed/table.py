"""Plain-text tables for the seed summary and `seed --list` (no imports: --list stays fast)."""

from __future__ import annotations


def format_table(rows: list[tuple[str, ...]]) -> list[str]:
    """Rows (the first is the header) as lines of left-aligned columns, two spaces apart."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
