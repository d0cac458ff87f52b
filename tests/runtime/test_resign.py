"""`modelsync resign`: older-format buckets get the current format; nothing unverified is ever signed;
`--latest-only` refreshes LATEST for a maximum age and will not refresh a LATEST put back from before."""

from __future__ import annotations

import base64
import json
import os
import time

import pytest

from .helpers import assert_one_line_error, make_keypair, publish_cli, run_cli

V1 = {"model.bin": b"one " * 100, "config.json": b"{}"}
V2 = {"model.bin": b"two " * 100, "config.json": b"{}"}


@pytest.fixture
def env(bucket):
    return {"MODELSYNC_BUCKET": bucket, "MODELSYNC_PART_SIZE_MIB": "1"}


def publish(tmp_path, env, files, key=None, name="m") -> str:
    return publish_cli(tmp_path, env, files, key, name)


def get(s3_client, bucket, key) -> bytes:
    return s3_client.get_object(Bucket=bucket, Key=key)["Body"].read()


def predicate(s3_client, bucket, name="m") -> dict:
    envelope = json.loads(get(s3_client, bucket, f"models/{name}/LATEST"))["statement"]
    return json.loads(base64.b64decode(envelope["payload"]))["predicate"]


def to_older_format(s3_client, bucket, name="m") -> None:
    """What a bucket signed before this format holds: no model.sig, LATEST without a statement."""
    for obj in s3_client.list_objects_v2(Bucket=bucket, Prefix=f"models/{name}/")["Contents"]:
        if obj["Key"].endswith("/model.sig"):
            s3_client.delete_object(Bucket=bucket, Key=obj["Key"])
    latest = json.loads(get(s3_client, bucket, f"models/{name}/LATEST"))
    s3_client.put_object(Bucket=bucket, Key=f"models/{name}/LATEST",
                         Body=json.dumps({"version": latest["version"], "signature": latest["signature"]}).encode())


def test_an_older_format_bucket_gets_the_current_format(tmp_path, env, pem_keys, s3_client, bucket):
    key, pub = pem_keys
    v1 = publish(tmp_path, env, V1, key)
    v2 = publish(tmp_path, env, V2, key)
    to_older_format(s3_client, bucket)
    dest = tmp_path / "d"
    old = run_cli("pull", "--dest", dest, "--trust-key", pub, "--progress", "quiet", env=env)
    assert old.returncode == 0, old.stderr  # the older format keeps working
    assert not os.path.exists(dest / "m" / "model.sig")

    proc = run_cli("resign", "--signing-key", key, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "resign: 3 re-signed, 0 current, 0 refused, 0 skipped" in proc.stdout
    for version in (v1, v2):
        assert get(s3_client, bucket, f"models/m/{version}/model.sig")
    assert predicate(s3_client, bucket) | {"signed_at": None} == {
        "repository": f"s3://{bucket}/models/", "version": v2, "sequence": 1, "signed_at": None}
    again = run_cli("resign", "--signing-key", key, env=env, check=True)
    assert "resign: 0 re-signed, 3 current" in again.stdout
    # A warm pull places the bundle the version now has, and keeps the statement.
    assert run_cli("pull", "--dest", dest, "--trust-key", pub, "--progress", "quiet", env=env).returncode == 0
    assert (dest / "m" / "model.sig").is_file()
    assert run_cli("verify", "--dest", dest, "--trust-key", pub, "--max-latest-age", "1h", env=env).returncode == 0


def test_what_does_not_verify_is_refused_not_signed(tmp_path, env, pem_keys, s3_client, bucket):
    key, pub = pem_keys
    unsigned = publish(tmp_path, env, V1)
    signed = publish(tmp_path, env, V2, key)
    manifest_key = f"models/m/{signed}/manifest.json"
    tampered = json.loads(get(s3_client, bucket, manifest_key))
    tampered["source"] = {"url": "https://example.org/evil"}
    s3_client.put_object(Bucket=bucket, Key=manifest_key, Body=json.dumps(tampered).encode())
    publish(tmp_path, env, V1, name="other")  # another model, unsigned LATEST too

    def objects():
        return {o["Key"]: o["ETag"] for o in s3_client.list_objects_v2(Bucket=bucket)["Contents"]}

    before = objects()
    proc = run_cli("resign", "--signing-key", key, env=env)
    assert proc.returncode == 1
    refused = [line for line in proc.stdout.splitlines() if line.startswith("REFUSED")]
    assert any(f"m {unsigned}: " in line and "no signature" in line for line in refused)
    assert any(f"m {signed}: " in line and "does not verify" in line for line in refused)
    assert any(line.startswith("REFUSED m LATEST: its version was refused") for line in refused)
    assert "resign: 0 re-signed, 0 current, 5 refused" in proc.stdout
    assert objects() == before  # nothing was written


def test_a_key_rotation_re_signs_what_the_old_key_signed_and_continues_the_sequence(tmp_path, env, s3_client,
                                                                                   bucket):
    old_key, old_pub = make_keypair(tmp_path / "old")
    new_key, new_pub = make_keypair(tmp_path / "new")
    publish(tmp_path, env, V1, old_key)
    publish(tmp_path, env, V2, old_key)
    assert predicate(s3_client, bucket)["sequence"] == 2
    assert run_cli("pull", "--dest", tmp_path / "d", "--trust-key", new_pub, env=env).returncode == 1
    proc = run_cli("resign", "--signing-key", new_key, "--trust-key", old_pub, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert predicate(s3_client, bucket)["sequence"] == 3
    assert run_cli("pull", "--dest", tmp_path / "d", "--trust-key", new_pub, env=env).returncode == 0
    assert run_cli("pull", "--dest", tmp_path / "d2", "--trust-key", old_pub, env=env).returncode == 1


def test_latest_only_refreshes_latest_for_a_maximum_age(tmp_path, env, pem_keys, s3_client, bucket):
    key, pub = pem_keys
    version = publish(tmp_path, env, V1, key)
    before = predicate(s3_client, bucket)
    time.sleep(5.1)  # signing times are whole seconds: the fresh one below may look a second older than it is
    stale = run_cli("pull", "--dest", tmp_path / "d", "--trust-key", pub, "--max-latest-age", "5", env=env)
    assert_one_line_error(stale, "LATEST refused", "more than the maximum age 5s")
    proc = run_cli("resign", "--latest-only", "--signing-key", key, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[1].split() == ["m", "LATEST", "re-signed"]
    after = predicate(s3_client, bucket)
    assert (after["version"], after["sequence"]) == (version, before["sequence"] + 1)
    assert after["signed_at"] > before["signed_at"]
    fresh = run_cli("pull", "--dest", tmp_path / "d", "--trust-key", pub, "--max-latest-age", "5", env=env)
    assert fresh.returncode == 0, fresh.stderr


def test_latest_only_will_not_refresh_a_latest_put_back_from_before(tmp_path, env, pem_keys, s3_client, bucket):
    """A replayed LATEST, refreshed, would come out with a fresh time and pass any maximum age. The bucket's
    versioning keeps the newer statement, so the refresh refuses instead."""
    key, _pub = pem_keys
    s3_client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    v1 = publish(tmp_path, env, V1, key)
    replayed = get(s3_client, bucket, "models/m/LATEST")
    v2 = publish(tmp_path, env, V2, key)
    s3_client.put_object(Bucket=bucket, Key="models/m/LATEST", Body=replayed)
    proc = run_cli("resign", "--latest-only", "--signing-key", key, env=env)
    assert proc.returncode == 1
    refused = proc.stdout.splitlines()[-1]
    assert refused.startswith(f"REFUSED m LATEST: it names m@{v1} at sequence 1, below m@{v2} (sequence 2")
    assert "an older LATEST was put back" in refused
    assert get(s3_client, bucket, "models/m/LATEST") == replayed
    # Publishing continues from the history's highest sequence only through `modelsync sign`; a plain
    # resign (not --latest-only) of the current format leaves LATEST alone.
    assert "0 re-signed" in run_cli("resign", "--signing-key", key, env=env).stdout


def test_resign_needs_a_signing_key(env):
    proc = run_cli("resign", env=env)
    assert_one_line_error(proc, "modelsync resign needs --signing-key / MODELSYNC_SIGNING_KEY")
    assert proc.returncode == 2
