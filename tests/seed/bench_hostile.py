"""Figures for hostile archives on this machine (not a test; prints figures, asserts nothing).

Each case runs `extract_zip` in a fresh subprocess and prints what it did: the outcome (files and
folders written, or the one-line refusal), the archive's size, and the child's peak RSS.

- doubling: d0/f plus d<i>/a and d<i>/b linking to d<i-1> (16 levels: 65,536 files if copied)
- many-links: one empty file and 30,000 links to it
- big-link: a link entry whose body is --link-mib MiB of zeros (compresses to ~0.1 %)

    .venv/bin/python -m tests.seed.bench_hostile
    .venv/bin/python -m tests.seed.bench_hostile --link-mib 400 --max-mb 1
"""

from __future__ import annotations

import argparse
import io
import json
import os
import stat
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

MIB = 1024 * 1024

CHILD = r"""
import json, os, sys, time
from modelsync.seed.extract import extract_zip
archive, dest, max_bytes = sys.argv[1], sys.argv[2], int(sys.argv[3])
started = time.monotonic()
try:
    written = extract_zip(archive, dest, max_bytes=max_bytes)
    files = dirs = 0
    for _root, dirnames, filenames in os.walk(dest):
        files += len(filenames)
        dirs += len(dirnames)
    outcome = f"extracted {files} files and {dirs} folders, {written} bytes"
except Exception as exc:
    outcome = f"refused: {type(exc).__name__}: {exc}"
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent across fork and exec.
hwm_kib = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(json.dumps({"outcome": outcome, "seconds": round(time.monotonic() - started, 2),
                  "max_rss_mib": round(hwm_kib / 1024, 1)}))
"""


def link_info(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    return info


def build(kind: str, link_mib: int) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        if kind == "doubling":
            zf.writestr("d0/f", b"")
            for i in range(1, 17):
                for leaf in "ab":
                    zf.writestr(link_info(f"d{i}/{leaf}"), f"../d{i - 1}")
        elif kind == "many-links":
            zf.writestr("m/f", b"")
            for i in range(30_000):
                zf.writestr(link_info(f"m/l{i}"), "f")
        else:
            zf.writestr("m/f", b"w")
            zf.writestr(link_info("m/l"), b"\0" * (link_mib * MIB))
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--link-mib", type=int, default=400, help="body of the big link entry (default 400)")
    parser.add_argument("--max-mb", type=int, default=1, help="size bound for doubling/many-links (default 1)")
    args = parser.parse_args()
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root / "container"), str(root)])}
    for kind in ("doubling", "many-links", "big-link"):
        with tempfile.TemporaryDirectory(prefix="hostile-") as work:
            archive = Path(work) / f"{kind}.zip"
            archive.write_bytes(build(kind, args.link_mib))
            # The big link entry gets a bound it fits under, so only the link rules can stop it.
            bound = (args.link_mib + 1) * MIB if kind == "big-link" else args.max_mb * MIB
            proc = subprocess.run([sys.executable, "-c", CHILD, str(archive), str(Path(work) / "out"), str(bound)],
                                  capture_output=True, text=True, env=env)
            result = json.loads(proc.stdout) if proc.returncode == 0 else {"outcome": proc.stderr[-300:]}
            print(f"{kind:<11} archive {archive.stat().st_size:>9} bytes, bound {bound // MIB} MiB: "
                  f"{result['outcome']} ({result.get('seconds')} s, peak RSS {result.get('max_rss_mib')} MiB)")


if __name__ == "__main__":
    main()
