"""`make docs` writes the three generated references through tools/docs.py; --check names a stale one."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tools import docs

REPO = Path(__file__).resolve().parents[2]


def test_the_three_references_are_generated_and_none_is_stale():
    assert [page.relative_to(REPO).as_posix() for page, _ in docs.PAGES] == [
        "docs/settings.md",
        "docs/reference/cli.md",
        "docs/reference/api.md",
    ]
    assert docs.stale() == []
    assert docs.main(["--check"]) == 0


def test_check_names_a_stale_or_missing_page_and_write_fixes_it(tmp_path, monkeypatch, capsys):
    edited, missing = tmp_path / "edited.md", tmp_path / "reference" / "missing.md"
    edited.write_text("hand-edited\n")
    monkeypatch.setattr(docs, "PAGES", [(edited, lambda: "generated\n"), (missing, lambda: "also generated\n")])
    assert docs.main(["--check"]) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"{edited} is stale: run `make docs` and commit it",
        f"{missing} is stale: run `make docs` and commit it",
    ]
    assert docs.main(["--write"]) == 0
    assert edited.read_text() == "generated\n" and missing.read_text() == "also generated\n"
    assert docs.main(["--check"]) == 0
    assert docs.main([]) == 2


@pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")
def test_make_docs_runs_the_generators():
    proc = subprocess.run(["make", "--no-print-directory", "-n", "-o", "install", "docs"], cwd=REPO,
                          capture_output=True, text=True, timeout=60, check=True)
    assert proc.stdout.split() == [".venv/bin/python", "-m", "tools.docs", "--write"]
