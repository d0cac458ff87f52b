"""How `make local` keeps its S3 bucket between runs (tools.local.SavedBucket), against the
session's real moto server: saved files mirror the bucket, deletions included, and a restore
into a fresh bucket gives back the same objects."""

from __future__ import annotations

import uuid

from tools.local import SavedBucket


def objects(s3_client, bucket: str) -> dict[str, bytes]:
    listed = s3_client.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {o["Key"]: s3_client.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in listed}


def test_save_mirrors_changes_and_deletions_and_restore_brings_them_back(s3_client, tmp_path):
    first = f"local-{uuid.uuid4().hex[:12]}"
    saved = SavedBucket(s3_client, tmp_path, first)
    assert saved.restore() == 0  # nothing saved yet: an empty new bucket
    for key, body in {"models/a/1/files/w.bin": b"one", "models/a/LATEST": b'{"version": "1"}',
                      "models/b/LATEST": b'{"version": "9"}'}.items():
        s3_client.put_object(Bucket=first, Key=key, Body=body)
    saved.save()
    assert (tmp_path / first / "models/a/1/files/w.bin").read_bytes() == b"one"

    s3_client.delete_object(Bucket=first, Key="models/b/LATEST")
    s3_client.put_object(Bucket=first, Key="models/a/LATEST", Body=b'{"version": "2"}')
    (tmp_path / first / "models/a/.w.bin.partial").write_bytes(b"an interrupted save")
    saved.save()
    assert not (tmp_path / first / "models/b/LATEST").exists()
    assert (tmp_path / first / "models/a/LATEST").read_bytes() == b'{"version": "2"}'
    assert not list((tmp_path / first).rglob("*.partial"))

    # A later run: a new server (here: a new bucket) gets exactly the saved objects back.
    second = f"local-{uuid.uuid4().hex[:12]}"
    (tmp_path / second).symlink_to(tmp_path / first)
    (tmp_path / first / "models/.x.partial").write_bytes(b"left over")
    assert SavedBucket(s3_client, tmp_path, second).restore() == 2
    assert objects(s3_client, second) == {"models/a/1/files/w.bin": b"one", "models/a/LATEST": b'{"version": "2"}'}
