"""One place per fact, and a README a newcomer reads in minutes: no table row is written in two hand-written pages,
the README stays within 200 lines, the hand-written docs within 2,500, and a decision record within 30.
Generated references (docs/settings.md, docs/reference/) are not hand-written and not counted."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

from tools.doc_links import ROOT

SEPARATOR = re.compile(r"^\|[\s\-:|]+\|$")


def hand_written() -> list[Path]:
    generated = {ROOT / "docs" / "settings.md", *(ROOT / "docs" / "reference").rglob("*.md")}
    return [ROOT / "README.md", *(p for p in sorted((ROOT / "docs").rglob("*.md")) if p not in generated)]


def table_rows(text: str) -> set[str]:
    """The rows of a page's markdown tables, spaces and case normalised; separators and short rows (headers such
    as `| name | value |`) left out."""
    rows = (re.sub(r"\s+", " ", line.strip().lower()) for line in text.splitlines())
    return {row for row in rows if row.startswith("|") and not SEPARATOR.match(row) and len(row) > 40}


def repeated_rows(pages: dict[str, str]) -> dict[str, list[str]]:
    where = defaultdict(list)
    for name, text in pages.items():
        for row in table_rows(text):
            where[row].append(name)
    return {row: names for row, names in where.items() if len(names) > 1}


def test_no_table_row_is_written_in_two_pages():
    pages = {str(p.relative_to(ROOT)): p.read_text() for p in hand_written()}
    repeated = repeated_rows(pages)
    assert not repeated, "the same table row in two pages (keep it in one, link from the other):\n" + "\n".join(
        f"{names}: {row[:100]}" for row, names in repeated.items())


def test_the_row_check_finds_a_copied_row():
    row = "| `flat` (default) | `<NAME>/...` for every served model | `MODEL_PATH=<view_path>` |"
    pages = {"a.md": f"| a | b | c |\n| --- | --- | --- |\n{row}\n", "b.md": f"text\n\n{row.upper()}\n"}
    assert list(repeated_rows(pages).values()) == [["a.md", "b.md"]]
    assert repeated_rows({"a.md": pages["a.md"], "c.md": "| --- | --- |\n| short | row |\n"}) == {}


def test_the_docs_stay_within_their_line_budgets():
    lines = {p: len(p.read_text().splitlines()) for p in hand_written()}
    assert lines[ROOT / "README.md"] <= 200
    assert sum(lines.values()) <= 2500, f"README.md plus the hand-written docs: {sum(lines.values())} lines"
    decisions = {p.name: n for p, n in lines.items() if p.parent.name == "decisions" and p.name != "README.md"}
    assert len(decisions) >= 5
    assert all(n <= 30 for n in decisions.values()), decisions
    assert ROOT / "docs" / "runbook.md" in lines and not any("reference" in p.parts for p in lines)
