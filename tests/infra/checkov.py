"""Running checkov (its own virtual environment, made by `make test`: its pins clash with ours) over
templates, offline: CloudFormation checks only, no download from Prisma Cloud, and a proxy that points
nowhere (127.0.0.1:9) so any attempt to reach the network fails here instead of leaving the machine."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from .helpers import PROJECT

CHECKOV = PROJECT / ".venv-checkov" / "bin" / "checkov"
NOWHERE = "http://127.0.0.1:9"


def run_checkov(directory: Path) -> dict:
    """checkov's JSON report over every *.template.json in `directory` (failed, passed and skipped checks)."""
    assert CHECKOV.exists(), f"{CHECKOV} is missing: run `make test` (it installs requirements-checkov.txt)"
    env = {**os.environ, "HTTPS_PROXY": NOWHERE, "HTTP_PROXY": NOWHERE, "https_proxy": NOWHERE,
           "http_proxy": NOWHERE, "NO_PROXY": "", "no_proxy": "", "BC_API_KEY": "", "PRISMA_API_URL": ""}
    result = subprocess.run([str(CHECKOV), "--framework", "cloudformation", "--skip-download", "--output", "json",
                             "--directory", str(directory)], capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode in (0, 1), result.stdout[-2000:] + result.stderr[-3000:]  # 1: failed checks
    report = json.loads(result.stdout)
    [report] = report if isinstance(report, list) else [report]  # one framework: one report
    assert report["check_type"] == "cloudformation"
    return report


def failures(report: dict) -> list[str]:
    """One line per failed check: id, resource (type.logical id) and file, so a failure says what to fix."""
    return [f"{c['check_id']} {c['resource']} in {Path(c['file_path']).name}: {c['check_name']}"
            for c in report["results"]["failed_checks"]]


def skipped(report: dict) -> set[tuple[str, str, str]]:
    """(file, logical id, check id) of every check skipped by a resource's Metadata."""
    return {(Path(c["file_path"]).name, c["resource"].split(".", 1)[1], c["check_id"])
            for c in report["results"]["skipped_checks"]}
