"""bench/chart.py: the benchmark's picture, drawn from bench/run.py's results.json as a hand-written SVG."""

from __future__ import annotations

import importlib.util
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def chart():
    spec = importlib.util.spec_from_file_location("bench_chart", BENCH / "chart.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def row(server: str, shape: str, seconds: dict[str, tuple[float, float]]) -> dict:
    """One results.json row: the fields chart.py reads (run.py writes more)."""
    tools = {t: {"cold": {"seconds": c, "cpu": 1.0}, "warm": {"seconds": w, "cpu": 0.1}} for t, (c, w) in seconds.items()}
    return {"server": server, "shape": shape, "data": "", "files": 503, "bytes": 784 * 2**20, "tools": tools}


RESULTS = [
    row("s3rver", "mix", {"modelsync": (2.72, 0.08), "s5cmd": (2.11, 0.09), "aws": (3.08, 0.41)}),
    row("moto", "small & more", {"modelsync": (25.13, 0.23), "s5cmd": (48.73, 1.90)}),
]


def bars(svg: str) -> list[tuple[str, float]]:
    root = ET.fromstring(svg)
    return [(r.get("fill"), float(r.get("width"))) for r in root.iter(SVG + "rect") if r.get("height") != root.get("height")]


def test_each_group_has_a_cold_and_a_warm_bar_per_tool_scaled_to_its_slowest(chart):
    svg = chart.render(RESULTS)
    drawn = bars(svg)
    assert len(drawn) == 2 * 3 + 2 * 2  # mix: 3 tools, cold and warm; small: 2 tools
    mix_cold, mix_warm = drawn[0:3], drawn[3:6]  # a group: the cold bars of its tools, then the warm ones
    assert [fill for fill, _ in mix_cold] == [chart.COLOURS[t] for t in ("modelsync", "s5cmd", "aws")]
    assert max(w for _, w in mix_cold) == max(w for _, w in mix_warm) == chart.BAR_W  # aws is slowest in both
    assert mix_cold[0][1] / mix_cold[2][1] == pytest.approx(2.72 / 3.08, abs=0.01)
    assert mix_warm[0][1] / mix_warm[2][1] == pytest.approx(0.08 / 0.41, abs=0.01)
    texts = [t.text for t in ET.fromstring(svg).iter(SVG + "text")]
    assert "2.72" in texts and "0.41" in texts and "48.73" in texts
    assert "moto, small & more" in texts  # escaped in the file, read back whole


def test_the_same_results_draw_the_same_bytes_and_main_draws_results_json(chart, tmp_path):
    assert chart.render(RESULTS) == chart.render(json.loads(json.dumps(RESULTS)))
    results, out = tmp_path / "results.json", tmp_path / "bench.svg"
    results.write_text(json.dumps(RESULTS))
    assert chart.main(["chart.py", str(results), str(out)]) == 0
    assert out.read_text() == chart.render(RESULTS)
    assert chart.main(["chart.py"]) == 2


def test_run_py_writes_the_svg_it_is_asked_for():
    source = (BENCH / "run.py").read_text()
    assert '"--svg"' in source and "chart.render(" in source
