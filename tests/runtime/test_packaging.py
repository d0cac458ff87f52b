"""The image installs the package the same way the tests do, and the package ships everything."""

import os
import re
import subprocess
import sys
import zipfile

import pytest

from model_delivery.contract import SCRATCH_PATH, STORE_PATH, VIEW_PATH

from .helpers import CONTAINER

DOCKERFILE = os.path.join(CONTAINER, "Dockerfile")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), CONTAINER],
        check=True, capture_output=True,
    )
    [name] = [n for n in os.listdir(out) if n.endswith(".whl")]
    return zipfile.ZipFile(out / name)


def test_wheel_ships_every_module_the_cli_names_and_the_catalog(wheel):
    names = set(wheel.namelist())
    from modelsync.cli import COMMANDS

    for module in COMMANDS:
        assert module.replace(".", "/") + ".py" in names
    assert "modelsync/catalog.yaml" in names  # the seed catalog bundled in the image
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "modelsync = modelsync.cli:main" in wheel.read(entry_points).decode()


def test_dockerfile_installs_pins_then_the_package_without_deps():
    text = open(DOCKERFILE).read()
    runs = " ".join(re.findall(r"^RUN .*?(?<!\\)$", text, flags=re.M | re.S))
    # The pins of requirements.txt, hash-locked (tests/ops/test_locks.py checks the locks against them).
    assert 'pip install --require-hashes -r "$lock"' in runs
    assert "pip install --no-deps ." in runs
    assert runs.index("pip install --require-hashes") < runs.index("pip install --no-deps .")
    assert re.search(r"^ARG WITH_PADDLEOCR=0$", text, flags=re.M)
    assert "requirements-paddle.lock" in runs
    assert re.search(r"^USER 10001:10001$", text, flags=re.M)
    assert re.search(r'^HEALTHCHECK .*CMD \["modelsync", "healthcheck"\]$', text, flags=re.M)
    assert re.search(r'^CMD \["modelsync", "serve"\]$', text, flags=re.M)
    assert not re.search(r"AWS_(ACCESS_KEY_ID|SECRET_ACCESS_KEY|SESSION_TOKEN)", text)


def test_runtime_pins_are_exact_and_installed_here():
    from importlib.metadata import version

    for line in open(os.path.join(CONTAINER, "requirements.txt")):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, pinned = line.partition("==")
        assert sep == "==", f"not an exact pin: {line}"
        assert version(name) == pinned, f"{name}: tests run {version(name)}, the image installs {pinned}"


def test_dockerfile_declares_the_task_local_volumes_it_owns():
    # Fargate bind mounts start root-owned 0755 unless the image declares the path as a VOLUME;
    # the non-root pull must be able to write /models, and every container needs a writable /tmp.
    text = open(DOCKERFILE).read()
    volume = re.search(r'^VOLUME \[(.*)\]$', text, flags=re.M)
    assert volume, "the Dockerfile must declare VOLUME for the task-local volumes"
    declared = {p.strip().strip('"') for p in volume.group(1).split(",")}
    # Every path where a modelsync container writes a task-local volume (the task definitions' paths).
    assert {STORE_PATH, VIEW_PATH, SCRATCH_PATH} <= declared
    assert text.index(f"chown 10001:10001 {STORE_PATH} {VIEW_PATH}") < volume.start()  # owned before declared
