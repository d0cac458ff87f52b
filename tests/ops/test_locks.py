"""Supply chain: both images install hash-locked pins that cannot drift from the requirements, on a base image
pinned by digest (container/Dockerfile, tools/lock.py). No network: the locks are read as committed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tools import lock

DOCKERFILE = lock.CONTAINER / "Dockerfile"
LOCKS = (lock.RUNTIME_LOCK, lock.PADDLE_LOCK)


def logical_lines(path: Path) -> list[str]:
    text = path.read_text().replace("\\\n", " ")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


@pytest.mark.parametrize("path", LOCKS, ids=lambda p: p.name)
def test_every_lock_entry_is_an_exact_pin_with_sha256_hashes(path):
    entries = logical_lines(path)
    assert entries
    for entry in entries:
        pin, *options = entry.split()
        assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*==[A-Za-z0-9.+!_-]+", pin), entry
        assert options and all(re.fullmatch(r"--hash=sha256:[0-9a-f]{64}", o) for o in options), entry


def test_the_locks_pin_exactly_the_requirements():
    runtime = lock.read_pins(lock.RUNTIME_REQUIREMENTS)
    paddle = lock.read_pins(lock.PADDLE_REQUIREMENTS)
    versions = {path: {k: v for k, (_, v, _) in lock.read_lock(path).items()} for path in LOCKS}
    assert versions[lock.RUNTIME_LOCK] == {k: v for k, (_, v) in runtime.items()}
    # The seeding image: every runtime package, at requirements-paddle.txt's version where it names one.
    assert versions[lock.PADDLE_LOCK] == {**{k: v for k, (_, v) in runtime.items()},
                                          **{k: v for k, (_, v) in paddle.items()}}
    assert (versions[lock.RUNTIME_LOCK]["pyyaml"], versions[lock.PADDLE_LOCK]["pyyaml"]) == ("6.0.3", "6.0.2")
    assert lock.check() == []


def test_check_reports_a_lock_that_drifted_from_its_requirements(tmp_path, monkeypatch):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("boto3==1.44.5\nPyYAML==6.0.3\n")
    stale = tmp_path / "requirements.lock"
    stale.write_text(lock.render_lock({"boto3": ("boto3", "1.44.4"), "pyyaml": ("PyYAML", "6.0.3")}, "test",
                                      lambda name, version: ["0" * 64]))
    monkeypatch.setattr(lock, "locks", lambda: [(stale, lock.read_pins(requirements), "test")])
    assert lock.check() == ["requirements.lock does not match its requirements: run `make lock`"]
    stale.write_text(lock.render_lock(lock.read_pins(requirements), "test", lambda name, version: ["0" * 64]))
    assert lock.check() == []


def test_read_lock_refuses_an_unhashed_entry_and_read_pins_a_loose_one(tmp_path):
    unhashed = tmp_path / "unhashed.lock"
    unhashed.write_text("boto3==1.44.5 \\\n    --hash=sha256:" + "a" * 64 + "\nPyYAML==6.0.3\n")
    with pytest.raises(lock.LockError, match=r"'PyYAML==6.0.3' is not NAME==VERSION with --hash=sha256"):
        lock.read_lock(unhashed)
    loose = tmp_path / "requirements.txt"
    loose.write_text("boto3>=1.40\n")
    with pytest.raises(lock.LockError, match=r"requirements.txt:1: 'boto3>=1.40' is not an exact pin"):
        lock.read_pins(loose)


def test_only_files_of_the_pinned_version_are_hashed():
    assert lock.file_version("PyYAML", "pyyaml-6.0.2-cp311-cp311-manylinux_2_17_x86_64.whl") == lock.Version("6.0.2")
    assert lock.file_version("python-dateutil", "python_dateutil-2.9.0.post0.tar.gz") == lock.Version("2.9.0.post0")
    assert lock.file_version("boto3", "boto3-stubs-1.44.5.tar.gz") != lock.Version("1.44.5")
    assert lock.file_version("boto3", "boto3-1.44.5.exe") is None


def test_dockerfile_pins_the_base_by_digest_and_installs_only_hash_locked_pins():
    text = DOCKERFILE.read_text()
    froms = re.findall(r"^FROM (\S+)", text, flags=re.M)
    assert froms and all(re.fullmatch(r"python:3\.11-slim-bookworm@sha256:[0-9a-f]{64}", f) for f in froms)
    runs = " ".join(re.findall(r"^RUN .*?(?<!\\)$", text, flags=re.M | re.S))
    installs = re.findall(r"pip install [^;&]*", runs)
    requirement_installs = [i for i in installs if " -r " in i]
    assert requirement_installs and all("--require-hashes" in i for i in requirement_installs)
    assert "requirements.lock" in runs and "requirements-paddle.lock" in runs
    assert "requirements.txt" not in runs and "requirements-paddle.txt" not in runs
    assert "grep -v" not in text
