"""docs/reference/api.md is what tools/api_reference.py generates from model_delivery.__all__ and the docstrings,
it names every public name with its signature, and it is the same on every checkout."""

from __future__ import annotations

import inspect
import sys
from pathlib import Path

import model_delivery

PROJECT = Path(__file__).resolve().parents[2]
if str(PROJECT) not in sys.path:  # `tools` lives at the repository root
    sys.path.insert(0, str(PROJECT))

from tools import api_reference  # noqa: E402
from tools.api_reference import PAGE, render  # noqa: E402


def section(text: str, name: str) -> str:
    return text.split(f"\n## {name}\n", 1)[1].split("\n## ", 1)[0]


def test_the_committed_api_reference_is_what_the_library_generates():
    assert PAGE.read_text() == render(), "docs/reference/api.md is stale: run `make docs` and commit it"


def test_a_new_public_name_makes_the_committed_page_stale(monkeypatch):
    """The drift test can fail: a name added to __all__ shows in the page at once."""
    changed = [n for n in model_delivery.__all__ if n != "ModelStoreAlarms"] + ["seed_fingerprint"]
    monkeypatch.setattr(model_delivery, "__all__", changed)
    text = render()
    assert text != PAGE.read_text()
    assert "\n## ModelStoreAlarms\n" not in text and text.count("\n## seed_fingerprint\n") == 2


def test_every_public_name_has_its_section_with_a_signature_and_a_summary():
    text = PAGE.read_text()
    for name in model_delivery.__all__:
        value = getattr(model_delivery, name)
        body = section(text, name)
        assert f"| [`{name}`](#{name.lower()}) |" in text
        if inspect.isclass(value) or inspect.isfunction(value):
            assert f"```python\n{name}(" in body or f"```python\nclass {name}(" in body, name
            summary = api_reference.summary(name, value)
            assert summary and not summary.startswith("Props"), f"{name}'s docstring needs a first line saying what it is"
    for name in ("ModelDelivery", "ModelStore", "ModelSeeding"):
        assert "Props" in section(text, name) and "Attributes" in section(text, name)


def test_constructor_parameters_come_from_the_source_in_order():
    params = api_reference.parameters(model_delivery.ModelDelivery)
    assert params is not None
    written = [p for p in inspect.signature(model_delivery.ModelDelivery.__init__).parameters if p != "self"]
    assert [p.split(":")[0].split(" =")[0].lstrip("*") for p in params if p != "*"] == written
    assert "mode: str = 's3'" in params
    fields = api_reference.parameters(model_delivery.AlarmThresholds)
    assert fields and fields[0].startswith("tasks_below_desired_minutes: int = ")


def test_the_page_is_the_same_on_every_checkout():
    """Defaults appear as written (SEED_RUNNER_DIR, not this checkout's path), objects without their address."""
    text = PAGE.read_text()
    assert str(PROJECT) not in text and " at 0x" not in text
    assert "code_dir: Path = SEED_RUNNER_DIR" in text
