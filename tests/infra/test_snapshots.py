"""One JSON snapshot per stack: the demo app in each delivery mode, and the README's two apps on one store. Asset hashes are masked: they change with the
content of container/ and lambdas/seed_runner, which is not what these snapshots guard.
Refresh after an intended change with `pytest tests/infra --snapshot-update` and review the diff."""

from __future__ import annotations

import json
import re

import pytest
from syrupy.extensions.json import JSONSnapshotExtension

ASSET_HASH = re.compile(r"[0-9a-f]{64}")


def masked(template: dict) -> dict:
    return json.loads(ASSET_HASH.sub("<asset-hash>", json.dumps(template)))


@pytest.fixture
def json_snapshot(snapshot):
    return snapshot.use_extension(JSONSnapshotExtension)


@pytest.mark.parametrize("stack", ["Network", "Storage", "Service"])
def test_s3_mode(s3_built, json_snapshot, stack):
    assert masked(s3_built.templates()[stack]) == json_snapshot


@pytest.mark.parametrize("stack", ["Network", "Storage", "Service"])
def test_efs_mode(efs_built, json_snapshot, stack):
    assert masked(efs_built.templates()[stack]) == json_snapshot


@pytest.mark.parametrize("stack", ["Network", "Storage", "Service"])
def test_two_apps(two_apps_built, json_snapshot, stack):
    assert masked(two_apps_built.templates()[stack]) == json_snapshot


@pytest.mark.parametrize("stack", ["Storage", "Service"])
def test_s3files_mode(s3files_built, json_snapshot, stack):
    assert masked(s3files_built.templates()[stack]) == json_snapshot


def test_masking_leaves_no_asset_hash(s3_built):
    text = json.dumps(masked(s3_built.templates()["Service"]))
    assert "<asset-hash>" in text and not ASSET_HASH.search(text)
