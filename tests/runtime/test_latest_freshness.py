"""LATEST freshness: the signed LATEST statement binds the repository, a per-model sequence and the signing
time. The review's two attacks are reproduced here (a replayed older LATEST, a version copied to another
prefix); each was accepted before the statement existed."""

from __future__ import annotations

import base64
import json
import os
import time

import pytest

from modelsync.errors import JobFailed
from modelsync.keys import load_verifier
from modelsync.pull import _resolve, pull
from modelsync.store import LocalStore
from modelsync.objects import S3Objects
from modelsync.trust import check_pull_targets

from .helpers import assert_one_line_error, make_keypair, publish_cli, run_cli

V1 = {"model.bin": b"one " * 500}
V2 = {"model.bin": b"two " * 500}


@pytest.fixture
def env(bucket):
    return {"MODELSYNC_BUCKET": bucket, "MODELSYNC_PART_SIZE_MIB": "1"}


def publish(tmp_path, env, files, key) -> str:
    return publish_cli(tmp_path, env, files, key)


def pull_cli(dest, env, pub, *extra):
    return run_cli("pull", "--dest", dest, "--trust-key", pub, "--progress", "quiet", *extra, env=env)


def linked(dest) -> str:
    return os.path.basename(os.readlink(os.path.join(dest, "m")))


def statement(body: bytes) -> dict:
    envelope = json.loads(body)["statement"]
    return json.loads(base64.b64decode(envelope["payload"]))["predicate"]


def get(s3_client, bucket, key) -> bytes:
    return s3_client.get_object(Bucket=bucket, Key=key)["Body"].read()


def test_a_replayed_older_latest_is_refused_once_the_newer_one_was_pulled(tmp_path, env, pem_keys, s3_client,
                                                                           bucket):
    """Reproduction (issue 21, finding 1): after v2 was published and pulled, a PUT of the previous LATEST
    body made `pull --trust-key` switch back to v1 with exit 0."""
    key, pub = pem_keys
    v1 = publish(tmp_path, env, V1, key)
    old_latest = get(s3_client, bucket, "models/m/LATEST")
    dest = tmp_path / "d"
    assert pull_cli(dest, env, pub).returncode == 0
    v2 = publish(tmp_path, env, V2, key)
    assert pull_cli(dest, env, pub).returncode == 0 and linked(dest) == v2
    assert [statement(old_latest)["sequence"], statement(get(s3_client, bucket, "models/m/LATEST"))["sequence"]] == [
        1, 2]

    s3_client.put_object(Bucket=bucket, Key="models/m/LATEST", Body=old_latest)  # the replay
    proc = pull_cli(dest, env, pub)

    assert proc.returncode == 1
    assert_one_line_error(proc, "LATEST refused", f"m@{v1} (sequence 1", f"m@{v2} (sequence 2", "a rollback?",
                          f"m stays at {v2}")
    assert linked(dest) == v2
    dry = run_cli("pull", "--dest", dest, "--trust-key", pub, "--dry-run", env=env)
    assert dry.returncode == 1 and "LATEST refused" in dry.stderr
    # verify of the store still passes: it is at the newest LATEST it accepted.
    assert run_cli("verify", "--dest", dest, "--trust-key", pub, env=env).returncode == 0


def test_a_fresh_store_has_seen_nothing_so_only_a_maximum_age_refuses_a_replay(tmp_path, env, pem_keys, s3_client,
                                                                                bucket):
    """What the high-water mark cannot do (docs/runbook.md): a store that starts empty (a task-local volume)
    accepts any validly signed LATEST; a maximum age refuses one signed too long ago."""
    key, pub = pem_keys
    v1 = publish(tmp_path, env, V1, key)
    old_latest = get(s3_client, bucket, "models/m/LATEST")
    publish(tmp_path, env, V2, key)
    s3_client.put_object(Bucket=bucket, Key="models/m/LATEST", Body=old_latest)
    time.sleep(2.1)
    fresh = pull_cli(tmp_path / "fresh", env, pub)
    assert fresh.returncode == 0 and linked(tmp_path / "fresh") == v1
    aged = pull_cli(tmp_path / "aged", env, pub, "--max-latest-age", "2")
    assert aged.returncode == 1
    assert_one_line_error(aged, "LATEST refused", f"m@{v1} (sequence 1", "more than the maximum age 2s",
                          "modelsync resign --latest-only", "m stays at nothing")
    assert not os.path.lexists(tmp_path / "aged" / "m")
    from_env = pull_cli(tmp_path / "aged", {**env, "MODELSYNC_MAX_LATEST_AGE": "1h"}, pub)
    assert from_env.returncode == 0


def test_a_version_copied_verbatim_to_another_prefix_is_refused_there(tmp_path, env, pem_keys, s3_client, bucket):
    """Reproduction (issue 21, finding 1): a signed version copied to another prefix was accepted there."""
    key, pub = pem_keys
    version = publish(tmp_path, {**env, "MODELSYNC_BUCKET": f"s3://{bucket}/team-a"}, V1, key)
    for obj in s3_client.list_objects_v2(Bucket=bucket, Prefix="team-a/")["Contents"]:
        s3_client.copy_object(Bucket=bucket, Key="team-b/" + obj["Key"][len("team-a/"):],
                              CopySource={"Bucket": bucket, "Key": obj["Key"]})
    dest = tmp_path / "d"
    proc = pull_cli(dest, {**env, "MODELSYNC_BUCKET": f"s3://{bucket}/team-b"}, pub)
    assert proc.returncode == 1
    assert_one_line_error(proc, "LATEST refused", f"s3://{bucket}/team-b/m/LATEST names m@{version}",
                          f"for the repository s3://{bucket}/team-a/, not s3://{bucket}/team-b/", "m stays at nothing")
    assert not os.path.lexists(dest / "m")
    # A pinned version is content, not a pointer: its signatures bind the files, not where they are kept.
    pinned = pull_cli(dest, {**env, "MODELSYNC_BUCKET": f"s3://{bucket}/team-b"}, pub, "--model", f"m@{version}")
    assert pinned.returncode == 0, pinned.stderr


def test_publishing_an_older_version_again_moves_latest_forward(tmp_path, env, pem_keys, s3_client, bucket):
    """A deliberate rollback (publish v1 again) gets the next sequence, so stores that saw v2 follow it."""
    key, pub = pem_keys
    v1 = publish(tmp_path, env, V1, key)
    publish(tmp_path, env, V2, key)
    dest = tmp_path / "d"
    assert pull_cli(dest, env, pub).returncode == 0
    assert publish(tmp_path, env, V1, key) == v1
    assert statement(get(s3_client, bucket, "models/m/LATEST")) | {"signed_at": None} == {
        "repository": f"s3://{bucket}/models/", "version": v1, "sequence": 3, "signed_at": None}
    assert pull_cli(dest, env, pub).returncode == 0 and linked(dest) == v1


def test_an_older_format_latest_is_read_until_a_statement_was_seen(tmp_path, env, pem_keys, s3_client, bucket):
    """Buckets signed before the statement keep working; once a store accepted a statement, a LATEST without
    one (stripped, or replayed from before) is refused, as it is with a maximum age."""
    key, pub = pem_keys
    v1 = publish(tmp_path, env, V1, key)
    body = json.loads(get(s3_client, bucket, "models/m/LATEST"))
    older_format = json.dumps({"version": v1, "signature": body["signature"]}).encode()
    s3_client.put_object(Bucket=bucket, Key="models/m/LATEST", Body=older_format)
    assert pull_cli(tmp_path / "old", env, pub).returncode == 0
    aged = pull_cli(tmp_path / "aged", env, pub, "--max-latest-age", "7d")
    assert_one_line_error(aged, "LATEST refused", "without a signing time")

    s3_client.put_object(Bucket=bucket, Key="models/m/LATEST", Body=json.dumps(body).encode())
    dest = tmp_path / "d"
    assert pull_cli(dest, env, pub).returncode == 0
    s3_client.put_object(Bucket=bucket, Key="models/m/LATEST", Body=older_format)
    proc = pull_cli(dest, env, pub)
    assert_one_line_error(proc, "LATEST refused", f"names m@{v1} without a sequence (older format)",
                          f"older than m@{v1} (sequence 1")
    assert proc.returncode == 1


def test_a_newer_latest_accepted_meanwhile_stops_an_older_switch(tmp_path, env, pem_keys, s3_client, bucket):
    """Two pulls into one store: the one that checked the older LATEST re-checks under the model's lock and
    does not switch back over the newer one the other pull accepted meanwhile."""
    key, pub = pem_keys
    publish(tmp_path, env, V1, key)
    dest = tmp_path / "d"
    store = LocalStore(dest)
    store.ensure()
    from modelsync.s3 import make_client

    client = make_client()
    verifier = load_verifier(pub)
    targets = _resolve(client, bucket, "models/", store, None, True)
    slow = check_pull_targets(S3Objects(client, bucket, "models/"), store, targets, verifier)
    publish(tmp_path, env, V2, key)
    pull(client, bucket, dest, trust=verifier)  # the other pull, done first
    with pytest.raises(JobFailed, match="older than .* which this store accepted"):
        slow.recheck(store, "m")


def test_verify_checks_the_kept_latest(tmp_path, env, pem_keys, s3_client, bucket):
    key, pub = pem_keys
    v1 = publish(tmp_path, env, V1, key)
    v2 = publish(tmp_path, env, V2, key)
    dest = tmp_path / "d"
    assert pull_cli(dest, env, pub).returncode == 0
    assert run_cli("verify", "--dest", dest, "--trust-key", pub, "--bucket", bucket, "--max-latest-age", "1h",
                   env=env).returncode == 0
    wrong_repo = run_cli("verify", "--dest", dest, "--trust-key", pub, "--bucket", f"s3://{bucket}/other", env=env)
    assert wrong_repo.returncode == 1
    assert f"for the repository s3://{bucket}/models/, not s3://{bucket}/other/" in wrong_repo.stderr
    time.sleep(2.1)
    aged = run_cli("verify", "--dest", dest, "--trust-key", pub, "--max-latest-age", "2s", env=env)
    assert aged.returncode == 1 and f"m@{v2} (sequence 2" in aged.stderr and "maximum age 2s" in aged.stderr
    # The link moved back to v1 (a pinned pull): through the link that is not the LATEST the store accepted.
    assert pull_cli(dest, env, pub, "--model", f"m@{v1}").returncode == 0
    rolled = run_cli("verify", "--dest", dest, "--trust-key", pub, env=env)
    assert rolled.returncode == 1
    assert f"m is at {v1}, but this store accepted m@{v2} (sequence 2" in rolled.stderr
    assert run_cli("verify", "--dest", dest, "--trust-key", pub, "--model", f"m@{v1}", env=env).returncode == 0
    no_trust = run_cli("verify", "--dest", dest, "--max-latest-age", "1h", env=env)
    assert_one_line_error(no_trust, "--max-latest-age / MODELSYNC_MAX_LATEST_AGE needs --trust-key")
    assert no_trust.returncode == 2
    bad = run_cli("pull", "--dest", dest, "--trust-key", pub, "--max-latest-age", "soon", env=env)
    assert_one_line_error(bad, "--max-latest-age soon is not a duration")


def test_the_signing_key_of_a_latest_statement_is_the_trust_key(tmp_path, env, pem_keys, s3_client, bucket):
    """A statement signed by another key (spliced into an otherwise valid LATEST) is refused."""
    key, pub = pem_keys
    publish(tmp_path, env, V1, key)
    other_key, _ = make_keypair(tmp_path / "other")
    publish(tmp_path, {**env, "MODELSYNC_BUCKET": f"s3://{bucket}/elsewhere"}, V1, other_key)
    good = json.loads(get(s3_client, bucket, "models/m/LATEST"))
    foreign = json.loads(get(s3_client, bucket, "elsewhere/m/LATEST"))
    s3_client.put_object(Bucket=bucket, Key="models/m/LATEST",
                         Body=json.dumps({**good, "statement": foreign["statement"]}).encode())
    proc = pull_cli(tmp_path / "d", env, pub)
    assert_one_line_error(proc, "signature refused", "does not verify with the trust key")
