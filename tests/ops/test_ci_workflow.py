"""The users' CI workflow (.github/workflows/ci.yml) still matches the files and targets it uses.

GitHub only tells you a cache key or a make target is wrong after a push; these checks tell
you before.
"""

from __future__ import annotations

import glob
import re

import pytest
import yaml

from seed_fakes import REPO

WORKFLOW = REPO / ".github" / "workflows" / "ci.yml"


@pytest.fixture(scope="module")
def workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


@pytest.fixture(scope="module")
def steps(workflow) -> list[dict]:
    (job,) = workflow["jobs"].values()
    return job["steps"]


def step_using(steps: list[dict], action: str) -> dict:
    (step,) = [s for s in steps if s.get("uses", "").split("@")[0] == action]
    return step


def test_runs_on_push_and_pull_request_on_ubuntu(workflow):
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    assert set(triggers) == {"push", "pull_request"}
    (job,) = workflow["jobs"].values()
    assert job["runs-on"] == "ubuntu-latest"


def test_token_is_read_only_and_no_secrets_are_used(workflow):
    assert workflow["permissions"] == {"contents": "read"}
    assert "secrets." not in WORKFLOW.read_text()


def test_python_311_with_pip_cache_keyed_on_every_requirements_file(steps):
    setup = step_using(steps, "actions/setup-python")["with"]
    assert setup["python-version"] == "3.11"
    assert setup["cache"] == "pip"

    patterns = setup["cache-dependency-path"].split()
    keyed = {path for pattern in patterns for path in glob.glob(pattern, root_dir=REPO)}
    for pattern in patterns:
        assert glob.glob(pattern, root_dir=REPO), f"{pattern} matches no file: the cache step fails"
    pinned = set(glob.glob("requirements*.txt", root_dir=REPO)) | {"container/requirements.txt"}
    assert pinned <= keyed, f"not in the pip cache key: {sorted(pinned - keyed)}"


def test_node_22_with_npm_cache_on_the_lockfile(steps):
    setup = step_using(steps, "actions/setup-node")["with"]
    assert setup["node-version"] == "22"
    assert setup["cache"] == "npm"
    # setup-node's npm cache needs a lockfile at the root (it fails the job otherwise).
    assert (REPO / "package-lock.json").is_file()


def test_runs_make_test_then_make_synth_and_both_targets_exist(steps):
    commands = [s["run"].strip() for s in steps if "run" in s]
    assert commands == ["make test", "make synth"]

    targets = set(re.findall(r"^([A-Za-z][\w-]*):", (REPO / "Makefile").read_text(), re.MULTILINE))
    assert {"test", "synth"} <= targets
