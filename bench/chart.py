"""The benchmark's picture: cold and warm pull seconds of each tool, per server and data shape, as an SVG.

Drawn by hand (no plotting library), from the results bench/run.py writes (its results.json), so the
same figures give the same bytes:

    .venv/bin/python bench/run.py --svg docs/benchmark.svg            # measure, then draw
    .venv/bin/python bench/chart.py .bench/work/results.json docs/benchmark.svg   # redraw saved figures

Each group (one server, one shape) is scaled to its own slowest tool, since the shapes differ by a
factor of 30 in time: compare the bars within a group, read the seconds on the labels.
"""

from __future__ import annotations

import json
import sys
from html import escape

TOOLS = ("modelsync", "s5cmd", "aws")
COLOURS = {"modelsync": "#1f6feb", "s5cmd": "#8c959f", "aws": "#d29922"}
PANELS = (("cold", "cold pull, best run (s)"), ("warm", "warm pull in a new process, best run (s)"))
LABEL_W, BAR_W, GAP, BAR_H, PAD = 250, 270, 40, 14, 10


def _bar_row(x: float, y: float, tool: str, seconds: float, longest: float) -> list[str]:
    width = max(1.0, BAR_W * seconds / longest) if longest > 0 else 1.0
    return [
        f'<rect x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" height="{BAR_H}" fill="{COLOURS[tool]}"/>',
        f'<text x="{x + width + 4:.1f}" y="{y + BAR_H - 3:.1f}">{seconds:.2f}</text>',
    ]


def render(results: list[dict], title: str = "modelsync pull vs s5cmd sync vs aws s3 sync") -> str:
    """The SVG of results (bench/run.py's rows, as in its results.json)."""
    tools_of = [[t for t in TOOLS if t in r["tools"]] for r in results]
    group_h = [len(tools) * (BAR_H + 2) + 2 * PAD + 14 for tools in tools_of]
    width = LABEL_W + len(PANELS) * (BAR_W + GAP + 40)
    height = 70 + sum(group_h) + 30
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
        f'<text x="10" y="20" font-size="14" font-weight="bold">{escape(title)}</text>',
    ]
    for i, (_, heading) in enumerate(PANELS):
        out.append(f'<text x="{LABEL_W + i * (BAR_W + GAP + 40)}" y="50" font-weight="bold">{escape(heading)}</text>')
    y = 60.0
    for row, tools, h in zip(results, tools_of, group_h, strict=True):
        out.append(f'<line x1="10" y1="{y:.1f}" x2="{width - 10}" y2="{y:.1f}" stroke="#d0d7de"/>')
        out.append(
            f'<text x="10" y="{y + PAD + 10:.1f}" font-weight="bold">{escape(row["server"])}, '
            f"{escape(row['shape'])}</text>"
        )
        out.append(f'<text x="10" y="{y + PAD + 24:.1f}" fill="#57606a">{escape(_size(row))}</text>')
        for i, (key, _) in enumerate(PANELS):
            x = LABEL_W + i * (BAR_W + GAP + 40)
            longest = max(row["tools"][t][key]["seconds"] for t in tools)
            for j, tool in enumerate(tools):
                top = y + PAD + j * (BAR_H + 2)
                if i == 0:
                    out.append(f'<text x="{x - 6}" y="{top + BAR_H - 3:.1f}" text-anchor="end">{tool}</text>')
                out += _bar_row(x, top, tool, row["tools"][tool][key]["seconds"], longest)
        y += h
    out.append(
        f'<text x="10" y="{y + 20:.1f}" fill="#57606a">Each group is scaled to its slowest tool; '
        "shorter is faster. Source: bench/run.py (docs/benchmark.md).</text>"
    )
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _size(row: dict) -> str:
    return f"{row['files']:,} files, {row['bytes'] / 1024 / 1024:,.0f} MiB"


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: bench/chart.py RESULTS.json OUT.svg", file=sys.stderr)
        return 2
    with open(argv[1]) as handle:
        results = json.load(handle)
    with open(argv[2], "w") as handle:
        handle.write(render(results))
    print(f"wrote {argv[2]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
