"""Junk in the bucket (security review, finding C): keys that are not models, manifests and LATEST
pointers of the wrong type, range or size. Every one gives one line or a warning, never a traceback."""

from __future__ import annotations

import json
import os

import pytest

from modelsync import manifest as manifest_module
from modelsync.errors import JobFailed
from modelsync.manifest import Manifest, read_latest_version, read_manifest

from .helpers import assert_one_line_error, run_cli, sha256

JUNK_KEYS = ["models/bad name!/x", "models/-dash/LATEST", "models/" + "n" * 200 + "/x", "models/..../x"]


def put_junk(s3_client, bucket) -> None:
    for key in JUNK_KEYS:
        s3_client.put_object(Bucket=bucket, Key=key, Body=b"junk")


def warnings_in(stderr: str) -> list[dict]:
    events = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    return [e for e in events if e.get("event") == "warning"]


def test_pull_of_every_model_skips_invalid_names_with_a_warning_and_pulls_the_valid_ones(
        publish, s3_client, bucket, tmp_path):
    publish("good", {"a.bin": b"a"})
    publish("also.good", {"b.bin": b"b"})
    put_junk(s3_client, bucket)
    dest = tmp_path / "d"

    proc = run_cli("pull", "--bucket", bucket, "--dest", dest, "--progress", "json")

    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert (dest / "good" / "a.bin").read_bytes() == b"a" and (dest / "also.good" / "b.bin").read_bytes() == b"b"
    assert not [n for n in os.listdir(dest) if n not in ("good", "also.good") and not n.startswith(".")]
    skipped = [w["key"] for w in warnings_in(proc.stderr)]
    assert sorted(skipped) == sorted(k.rsplit("/", 1)[0] + "/" for k in JUNK_KEYS)
    assert all("not a valid model name: skipped" in w["message"] for w in warnings_in(proc.stderr))


def test_list_and_prune_skip_invalid_names_with_a_warning(publish, s3_client, bucket):
    publish("good", {"a.bin": b"a"})
    put_junk(s3_client, bucket)
    s3_client.put_object(Bucket=bucket, Key="models/good/not a version/files/x", Body=b"x")

    listed = run_cli("list", "--bucket", bucket)
    pruned = run_cli("prune", "--bucket", bucket, "--keep", "1")

    for proc in (listed, pruned):
        assert proc.returncode == 0, proc.stderr
        assert "Traceback" not in proc.stderr
        assert "modelsync: warning: s3://" in proc.stderr and "bad name!/' is not a valid model name" in proc.stderr
        assert "'models/good/not a version/' is not a valid version" in proc.stderr
    assert [line.split()[0] for line in listed.stdout.splitlines()[1:]] == ["good"]
    assert "removed 0 versions, kept 1" in pruned.stdout
    assert s3_client.get_object(Bucket=bucket, Key="models/bad name!/x")["Body"].read() == b"junk"  # left alone


def forged_manifest(**file_fields) -> dict:
    entry = {"path": "a", "size": 1, "sha256": "0" * 64, **file_fields}
    return {"name": "m", "version": "v1", "created": "2026-01-01T00:00:00Z", "source": {}, "files": [entry]}


@pytest.mark.parametrize("text, problem", [
    ('{"name": "m", "version": "v1", "files": [{"path": "a", "size": 1e400, "sha256": "%s"}]}' % ("0" * 64),
     "size must be a whole number of bytes in 0..2**63-1"),
    (json.dumps(forged_manifest(size=True)), "size must be a whole number of bytes"),
    (json.dumps(forged_manifest(size=-1)), "size must be a whole number of bytes"),
    (json.dumps(forged_manifest(size=2 ** 63)), "size must be a whole number of bytes"),
    (json.dumps(forged_manifest(size=1.0)), "size must be a whole number of bytes"),
    (json.dumps(forged_manifest(size="12")), "size must be a whole number of bytes"),
    (json.dumps(forged_manifest(path=["a"])), "path must be a string"),
    (json.dumps(forged_manifest(path=7)), "path must be a string"),
    (json.dumps(forged_manifest(sha256=0)), "sha256 must be 64 hex digits"),
    (json.dumps({**forged_manifest(), "files": {"a": 1}}), "'files' must be a list"),
    (json.dumps({**forged_manifest(), "files": ["a"]}), "files[0] must be an object"),
    (json.dumps({**forged_manifest(), "name": 5}), "'name' must be a string"),
    (json.dumps({**forged_manifest(), "version": ["v1"]}), "'version' must be a string"),
    (json.dumps({**forged_manifest(), "created": 5}), "'created' must be a string"),
    (json.dumps({**forged_manifest(), "source": "zenodo"}), "'source' must be an object"),
    (json.dumps([1, 2]), "not a JSON object"),
    ("[" * 100_000 + "]" * 100_000, "not valid JSON"),
    (b"\xff{", "not valid JSON"),
])
def test_manifest_fields_are_type_and_range_checked(text, problem):
    with pytest.raises(JobFailed) as err:
        Manifest.from_json(text, where="s3://b/models/m/v1/manifest.json")
    message = str(err.value)
    assert message.startswith("manifest s3://b/models/m/v1/manifest.json ") and problem in message, message
    assert "\n" not in message


def test_an_absurd_file_count_is_refused(monkeypatch):
    monkeypatch.setattr(manifest_module, "MAX_MANIFEST_FILES", 3)
    files = [{"path": f"f{i}", "size": 0, "sha256": "0" * 64} for i in range(4)]
    with pytest.raises(JobFailed, match=r"lists 4 files, more than the limit of 3"):
        Manifest.from_json(json.dumps({**forged_manifest(), "files": files}), where="t")


def test_a_size_of_1e400_in_the_bucket_is_one_line_not_a_traceback(s3_client, bucket, tmp_path):
    """Review finding C: this gave an OverflowError traceback."""
    text = json.dumps(forged_manifest()).replace('"size": 1', '"size": 1e400')
    s3_client.put_object(Bucket=bucket, Key="models/m/v1/manifest.json", Body=text.encode())
    s3_client.put_object(Bucket=bucket, Key="models/m/LATEST", Body=json.dumps({"version": "v1"}))
    for args in (["pull", "--dest", tmp_path / "d"], ["pull", "--dest", tmp_path / "d", "--model", "m"]):
        proc = run_cli(*args, "--bucket", bucket)
        assert proc.returncode == 1
        assert_one_line_error(proc, f"manifest s3://{bucket}/models/m/v1/manifest.json",
                              "size must be a whole number of bytes")


@pytest.mark.parametrize("body, problem", [
    (json.dumps({"version": "v1", "pad": "x" * 5000}).encode(), "is more than 4096 bytes"),
    (json.dumps({"version": 12}).encode(), "is not valid JSON with a 'version'"),
    (json.dumps({"version": True}).encode(), "is not valid JSON with a 'version'"),
    (b"[" * 4000, "is not valid JSON with a 'version'"),
    (b"", "is not valid JSON with a 'version'"),  # S3 answers a range of an empty object with 416
])
def test_latest_is_read_bounded_and_type_checked(s3_client, bucket, tmp_path, body, problem):
    s3_client.put_object(Bucket=bucket, Key="models/m/LATEST", Body=body)
    proc = run_cli("pull", "--bucket", bucket, "--dest", tmp_path / "d", "--model", "m")
    assert proc.returncode == 1
    assert_one_line_error(proc, f"s3://{bucket}/models/m/LATEST", problem)


def test_a_huge_latest_is_refused_without_reading_it(s3_client, bucket, proxy, proxy_client):
    s3_client.put_object(Bucket=bucket, Key="models/m/LATEST", Body=b" " * (8 * 1024 * 1024))
    with pytest.raises(JobFailed, match=r"LATEST is more than 4096 bytes"):
        read_latest_version(proxy_client, bucket, "m")
    [(method, path)] = [k for k in proxy.body_bytes if k[1].endswith("/models/m/LATEST")]
    assert method == "GET" and proxy.body_bytes[(method, path)] <= 4097  # a ranged read: not the 8 MiB


def test_manifests_are_read_with_a_bounded_read(client, s3_client, bucket, monkeypatch):
    monkeypatch.setattr(manifest_module, "MAX_MANIFEST_BYTES", 1000)
    files = [{"path": f"f{i}", "size": 4, "sha256": sha256(b"evil")} for i in range(20)]
    body = json.dumps({**forged_manifest(), "files": files}).encode()
    assert len(body) > 1000
    s3_client.put_object(Bucket=bucket, Key="models/m/v1/manifest.json", Body=body)
    with pytest.raises(JobFailed, match=rf"^s3://{bucket}/models/m/v1/manifest.json is more than 1000 bytes, the "
                                        r"most a manifest may have: not a modelsync manifest; republish the model$"):
        read_manifest(client, bucket, "m", "v1")


def test_publish_refuses_more_files_than_pull_accepts(client, bucket, tmp_path, monkeypatch):
    from modelsync import publish as publish_module
    from modelsync.errors import ModelsyncError
    from modelsync.publish import publish_directory

    monkeypatch.setattr(publish_module, "MAX_MANIFEST_FILES", 3)
    for i in range(4):
        (tmp_path / f"f{i}").write_bytes(b"x")
    with pytest.raises(ModelsyncError, match=r"holds more than 3 files, more than a model may have"):
        publish_directory(client, bucket, "m", tmp_path)
