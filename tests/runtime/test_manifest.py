import json

import pytest

from modelsync.config import parse_model_spec
from modelsync.errors import JobFailed, ModelsyncError
from modelsync.manifest import FileEntry, Manifest, check_relative_path, content_version

A = FileEntry("a.bin", 3, "a" * 64)
B = FileEntry("dir/b.bin", 5, "b" * 64)


def test_version_depends_only_on_content_not_order():
    assert content_version([A, B]) == content_version([B, A])
    assert content_version([A, B]) != content_version([A, FileEntry("dir/b.bin", 5, "c" * 64)])
    assert content_version([A, B]) != content_version([A, FileEntry("dir/b2.bin", 5, "b" * 64)])
    assert content_version([A]) != content_version([A, B])


@pytest.mark.parametrize("path", ["../x", "/etc/passwd", "a/../../b", "a//b", "./a", "a/.", "", "a\\..\\b", "a/",
                                  "a\nb", "caf\udce9"])  # control character; not UTF-8 (a lone surrogate from JSON)
def test_paths_that_could_escape_are_refused(path):
    with pytest.raises(JobFailed, match="unsafe path"):
        check_relative_path(path, where="test")


def test_normal_nested_paths_are_accepted():
    assert check_relative_path("official_models/PP-OCRv6/inference.yml", where="t")
    assert check_relative_path("..hidden/x", where="t")  # a name starting with dots is not ".."


def manifest_json(**overrides):
    data = {"name": "m", "version": "v1", "created": "2026-01-01T00:00:00Z", "source": {},
            "files": [{"path": "a", "size": 1, "sha256": "0" * 64}]}
    data.update(overrides)
    return json.dumps(data)


def test_manifest_round_trip():
    m = Manifest("m", "v1", "2026-01-01T00:00:00Z", {"url": "x"}, [A, B])
    again = Manifest.from_json(m.to_json(), where="t")
    assert again == m and again.total_bytes == 8


@pytest.mark.parametrize("overrides, message", [
    ({"files": [{"path": "../a", "size": 1, "sha256": "0" * 64}]}, "unsafe path"),
    ({"version": "../../etc"}, "invalid version"),
    ({"files": [{"path": "a", "size": 1, "sha256": "xyz"}]}, "sha256 must be 64 hex digits"),
    ({"files": [{"path": "a", "size": 1, "sha256": "0" * 64}] * 2}, "twice"),
    ({"files": "nope"}, "not a valid modelsync manifest"),
])
def test_bad_manifests_are_refused(overrides, message):
    with pytest.raises(JobFailed, match=message):
        Manifest.from_json(manifest_json(**overrides), where="t")


def test_model_specs():
    assert parse_model_spec("SEG_M2F_GrapheneL") == ("SEG_M2F_GrapheneL", None)
    assert parse_model_spec("paddleocr@abc123") == ("paddleocr", "abc123")
    for bad in ("../x", "a/b", "", "x@../y", "-x"):
        with pytest.raises(ModelsyncError):
            parse_model_spec(bad)
