"""docs/extending.md's worked example, followed as written: the layouts file is the page's YAML block, the commands
are the page's shell block (paths moved under tmp_path), run with the real CLI against the moto S3 server, and
the files the page says the server finds are there, with the published bytes."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from modelsync.layouts import Placement, load_layouts

from .helpers import assert_one_line_error, run_cli

PAGE = Path(__file__).resolve().parents[2] / "docs" / "extending.md"
MARKER = "<!-- tested by tests/runtime/test_extending.py"


def worked_example() -> tuple[str, list[str], list[str]]:
    """(the layouts file, the commands, the paths the page says the server finds) from the page."""
    layouts, commands, after = _example_parts()
    return layouts, commands, re.findall(r"`(/srv/repository/[^`]+)`", after)


def refused_name() -> str:
    """The name the page says the example's rule refuses, with exit 2."""
    after = _example_parts()[2]
    refused = re.search(r"does not match \(`([^`]+)`\)\s+is\s+refused\s+with\s+exit\s+2", after)
    assert refused, "docs/extending.md no longer names the model its rule refuses"
    return refused.group(1)


def _example_parts() -> tuple[str, list[str], str]:
    text = PAGE.read_text().split(MARKER, 1)[1]
    layouts = re.search(r"```yaml\n(.*?)```", text, re.S)
    commands = re.search(r"```sh\n(.*?)```", text, re.S)
    assert layouts and commands, "docs/extending.md lost its worked example"
    after = text[commands.end() :].strip().split("\n\n", 1)[0]
    return layouts.group(1), commands.group(1).strip().splitlines(), after


def test_the_page_carries_the_example_the_test_runs():
    layouts, commands, found = worked_example()
    assert "numbered:" in layouts and len(commands) == 3 and len(found) == 2
    assert refused_name() == "ResNet50"


def test_the_worked_example_builds_the_view_the_page_describes(bucket, publish, tmp_path):
    layouts_text, commands, found = worked_example()
    layouts_file = tmp_path / "my-layouts.yaml"
    layouts_file.write_text(layouts_text)
    weights = {"resnet50": b"resnet weights" * 100, "bert": b"bert weights" * 100}
    versions = {name: publish(name, {"model.onnx": data}) for name, data in weights.items()}

    # The loader the CLI and the CDK app use: one placement per model, at <NAME>/1.
    layout = load_layouts(layouts_file).get("numbered")
    assert layout.place("resnet50") == [Placement("resnet50/1", "")]
    assert layout.app_environment("/srv/repository") == {"MODEL_REPOSITORY": "/srv/repository"}

    moved = {
        "my-layouts.yaml": str(layouts_file),
        "/models": str(tmp_path / "models"),
        "/srv/repository": str(tmp_path / "repository"),
    }
    outputs = []
    for command in commands:
        words = [moved.get(word, word) for word in shlex.split(command, comments=True)]
        assert words[0] == "modelsync"
        outputs.append(run_cli(*words[1:], env={"MODELSYNC_BUCKET": bucket}, check=True))
    assert "numbered" in outputs[0].stdout and "MODEL_REPOSITORY=DIR" in outputs[0].stdout

    for path in found:  # what the page says the server finds: the published bytes, through links
        name = path.split("/")[3]
        on_disk = Path(path.replace("/srv/repository", moved["/srv/repository"]))
        assert on_disk.read_bytes() == weights[name]
        assert (tmp_path / "repository" / name / "1").resolve().name == versions[name]


def test_a_name_the_example_rule_does_not_match_is_refused_and_the_view_stays(bucket, publish, tmp_path):
    layouts_text, name = worked_example()[0], refused_name()
    (tmp_path / "my-layouts.yaml").write_text(layouts_text)
    publish("bert", {"model.onnx": b"b"})
    publish(name, {"model.onnx": b"r"})
    dest, view = tmp_path / "models", tmp_path / "repository"
    run_cli("pull", "--bucket", bucket, "--dest", dest, "--progress", "quiet", check=True)
    common = ("--dest", dest, "--layouts", tmp_path / "my-layouts.yaml", "--layout", "numbered")
    run_cli("view", view, *common, "--model", "bert", check=True)
    before = sorted(p.name for p in view.iterdir())
    proc = run_cli("view", view, *common)
    assert proc.returncode == 2
    assert_one_line_error(proc, f"cannot place model {name!r}", "no rule matches it")
    assert sorted(p.name for p in view.iterdir()) == before
