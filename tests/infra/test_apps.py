"""Apps come and go without touching each other: adding or removing an app under `apps` changes that app's own
resources and the shared lists that name it (what is seeded, the dashboard, the stack's app list), nothing else."""

from __future__ import annotations

import copy
import json
import re

import pytest

from .helpers import Built, cdk_json_context

# Shared resources whose content names the apps: the seeding selection, the dashboard, the EFS alarms (present
# while some app reads the mirror), and the outputs that list the apps.
SHARED_LISTS = re.compile(r"^(SeedingTaskDefinition|Dashboard|SharedAlarmsEfs)")
SHARED_OUTPUTS = {"Apps"}


def example_with(apps: dict) -> dict:
    """cdk.json's context with stage `example` serving exactly `apps`."""
    config = copy.deepcopy(cdk_json_context()["model-delivery"])
    config["stages"]["example"]["apps"] = apps
    return {"stage": "example", "model-delivery": config}


EXAMPLE_APPS = cdk_json_context()["model-delivery"]["stages"]["example"]["apps"]
FLAKE = {"image": "ghcr.io/example/flake-api:1.4.2", "port": 5000, "models": ["CLS_AMM_GrapheneL"]}


@pytest.fixture(scope="module")
def variants() -> dict[str, Built]:
    return {
        "both": Built(example_with(EXAMPLE_APPS)),
        "maskterial only": Built(example_with({"maskterial": EXAMPLE_APPS["maskterial"]})),
        "three": Built(example_with({**EXAMPLE_APPS, "flake": FLAKE})),
    }


def differences(before: dict, after: dict) -> set[str]:
    """Logical ids (resources and outputs) added, removed or changed between two templates."""
    found = set()
    for section in ("Resources", "Outputs"):
        old, new = before.get(section, {}), after.get(section, {})
        for key in old.keys() | new.keys():
            if json.dumps(old.get(key), sort_keys=True) != json.dumps(new.get(key), sort_keys=True):
                found.add(key)
    return found


def unexplained(changed: set[str], app_id: str) -> list[str]:
    own = re.compile(rf"^(App)?{app_id}[A-Z0-9]|AllowEventRule.*{app_id}")
    return sorted(k for k in changed if not (own.search(k) or SHARED_LISTS.match(k) or k in SHARED_OUTPUTS))


@pytest.mark.parametrize("before, after, app_id", [
    ("both", "maskterial only", "Ocr"),  # an app removed
    ("both", "three", "Flake"),  # an app added
])
def test_an_app_added_or_removed_changes_only_its_own_resources_and_the_shared_lists(variants, before, after, app_id):
    old, new = variants[before].templates(), variants[after].templates()
    for stack in ("Network", "Storage"):
        # Only the outputs CDK publishes for what the service stack references (the public subnets, while an
        # app is internet-facing) may come or go; no resource of a shared stack changes.
        changed = differences(old[stack], new[stack])
        assert [k for k in changed if not k.startswith("PublishOutput")] == [], stack
    changed = differences(old["Service"], new["Service"])
    assert any(k.startswith(app_id) for k in changed)  # the app's own resources did come or go
    assert unexplained(changed, app_id) == []
    # Everything of the apps that stay is byte for byte the same.
    for key in changed:
        assert not key.startswith(("Maskterial", "AppMaskterial")), key


def test_the_comparison_notices_a_change_to_another_app(variants):
    """The check above can fail: resizing maskterial while adding flake shows up as unexplained."""
    resized = Built(example_with({**EXAMPLE_APPS, "maskterial": {**EXAMPLE_APPS["maskterial"], "cpu": 8192,
                                                                 "memory_mib": 16384}, "flake": FLAKE}))
    changed = differences(variants["both"].templates()["Service"], resized.templates()["Service"])
    assert [k for k in unexplained(changed, "Flake") if k.startswith("Maskterial")]
