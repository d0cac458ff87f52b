"""docs/benchmark.md shows one bench run as bench/run.py printed it: its table is run.py's table() of the
committed results (docs/benchmark-results.json, the results.json of that run), and docs/benchmark.svg is
bench/chart.py's drawing of the same results. Editing a figure by hand, or committing a new picture without
its results, fails here."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


def load(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "bench" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def results() -> list[dict]:
    return json.loads((DOCS / "benchmark-results.json").read_text())


def test_the_committed_picture_is_drawn_from_the_committed_results(results):
    chart = load("chart")
    assert (DOCS / "benchmark.svg").read_text() == chart.render(results)


def test_the_page_table_is_the_one_run_py_prints_for_those_results(results, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "bench"))  # run.py imports chart and servers beside it
    run = load("run")
    for row in results:  # results.json holds each Run as a dict (dataclasses.asdict)
        row["publish"] = run.Run(**row["publish"])
        for figures in row["tools"].values():
            for key in ("cold", "warm", "pinned"):
                if key in figures:
                    figures[key] = run.Run(**figures[key])
    page = (DOCS / "benchmark.md").read_text()
    assert run.table(results) in page
    assert {(r["server"], r["shape"]) for r in results} == {
        (server, shape) for server in ("s3rver", "moto") for shape in ("mix", "small", "large")
    }
