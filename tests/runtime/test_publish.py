import json
import os

import pytest

from modelsync.errors import ModelsyncError
from modelsync.manifest import read_latest
from modelsync.publish import publish_directory

from .helpers import PART, assert_one_line_error, model_files, run_cli, sha256, write_model


def keys(s3_client, bucket):
    return sorted(o["Key"] for o in s3_client.list_objects_v2(Bucket=bucket).get("Contents", []))


def test_publish_writes_files_manifest_and_latest(client, s3_client, bucket, tmp_path):
    files = model_files()
    folder = write_model(tmp_path / "m", files)
    result = publish_directory(client, bucket, "SEG_M2F_GrapheneL", folder, part_size=PART,
                               source={"zenodo": 15765516})
    v = result.version
    assert not result.unchanged and result.uploaded_files == 4 and result.skipped_files == 0
    assert result.uploaded_bytes == sum(map(len, files.values()))
    prefix = f"models/SEG_M2F_GrapheneL/{v}/"
    assert keys(s3_client, bucket) == sorted(
        [f"{prefix}files/{p}" for p in files] + [f"{prefix}manifest.json", "models/SEG_M2F_GrapheneL/LATEST"]
    )
    for path, content in files.items():
        assert s3_client.get_object(Bucket=bucket, Key=f"{prefix}files/{path}")["Body"].read() == content
    latest = json.loads(s3_client.get_object(Bucket=bucket, Key="models/SEG_M2F_GrapheneL/LATEST")["Body"].read())
    assert latest == {"version": v}
    manifest = read_latest(client, bucket, "SEG_M2F_GrapheneL")
    assert manifest.source == {"zenodo": 15765516}
    assert {(f.path, f.size, f.sha256) for f in manifest.files} == {
        (p, len(c), sha256(c)) for p, c in files.items()
    }
    assert manifest.created.endswith("Z")


def test_same_content_is_the_same_version_and_uploads_nothing(client, s3_client, bucket, tmp_path):
    folder = write_model(tmp_path / "m", model_files())
    first = publish_directory(client, bucket, "m", folder, part_size=PART)
    before = {o["Key"]: o["LastModified"] for o in s3_client.list_objects_v2(Bucket=bucket)["Contents"]}
    again = publish_directory(client, bucket, "m", write_model(tmp_path / "copy", model_files()), part_size=PART)
    assert again.version == first.version and again.unchanged
    assert again.uploaded_files == 0 and again.uploaded_bytes == 0
    after = {o["Key"]: o["LastModified"] for o in s3_client.list_objects_v2(Bucket=bucket)["Contents"]}
    assert after == before


def test_changed_content_is_a_new_version_and_moves_latest(client, bucket, publish):
    v1 = publish("m", model_files(seed=1))
    v2 = publish("m", model_files(seed=2))
    assert v1 != v2
    assert read_latest(client, bucket, "m").version == v2
    assert read_latest(client, bucket, "never-published") is None


def test_interrupted_publish_is_resumed_without_reuploading(client, s3_client, bucket, tmp_path):
    folder = write_model(tmp_path / "m", model_files())
    v = publish_directory(client, bucket, "m", folder, part_size=PART).version
    # What a publish killed before the manifest leaves: the files only.
    s3_client.delete_object(Bucket=bucket, Key=f"models/m/{v}/manifest.json")
    s3_client.delete_object(Bucket=bucket, Key="models/m/LATEST")
    s3_client.delete_object(Bucket=bucket, Key=f"models/m/{v}/files/config.yaml")
    resumed = publish_directory(client, bucket, "m", folder, part_size=PART)
    assert resumed.version == v and not resumed.unchanged
    assert resumed.uploaded_files == 1 and resumed.skipped_files == 3
    assert read_latest(client, bucket, "m").version == v


def test_cli_prints_the_version(bucket, tmp_path):
    folder = write_model(tmp_path / "m", {"a.txt": b"hello"})
    proc = run_cli("publish", folder, "--name", "tiny", "--bucket", bucket, check=True)
    version = proc.stdout.strip()
    assert len(version) == 16 and proc.stdout == version + "\n"
    again = run_cli("publish", folder, "--name", "tiny", "--bucket", bucket, check=True)
    assert again.stdout.strip() == version


def test_symlink_out_of_the_folder_is_refused(client, bucket, tmp_path):
    outside = tmp_path / "secret"
    outside.write_text("x")
    folder = write_model(tmp_path / "m", {"a": b"1"})
    os.symlink(outside, os.path.join(folder, "link"))
    with pytest.raises(ModelsyncError, match="links outside"):
        publish_directory(client, bucket, "m", folder)


@pytest.mark.parametrize("setup, args, fragment", [
    ("empty", ["--name", "m"], "contains no files"),
    ("missing", ["--name", "m"], "is not a directory"),
    ("ok", ["--name", "../m"], "invalid model name"),
    ("ok", ["--name", "m", "--source", "[1]"], "--source must be a JSON object"),
])
def test_publish_bad_input_is_one_line(bucket, tmp_path, setup, args, fragment):
    folder = tmp_path / "m"
    if setup == "empty":
        folder.mkdir()
    elif setup == "ok":
        write_model(folder, {"a": b"1"})
    proc = run_cli("publish", folder, "--bucket", bucket, *args)
    assert proc.returncode == 2
    assert_one_line_error(proc, fragment)


def test_publish_to_a_missing_bucket_is_one_line(tmp_path, s3_endpoint):
    folder = write_model(tmp_path / "m", {"a": b"1"})
    proc = run_cli("publish", folder, "--name", "m", "--bucket", "no-such-bucket-for-publish")
    assert proc.returncode == 2
    assert_one_line_error(proc, "bucket 'no-such-bucket-for-publish' does not exist")


# File names a filesystem allows. Whatever publish accepts, every pull must accept too: a name
# pull refuses must be refused by publish, before LATEST moves (review finding 1).
ODD_NAMES = [
    "w\\eights.bin",                 # backslash: pull refuses it
    "tab\there.bin",                 # control character: S3 advises against it
    os.fsdecode(b"caf\xe9.bin"),     # not UTF-8: no S3 key can name it
    "café.bin", "with space.bin", "new\nline.bin", "-dash.bin", "...", "~$lock", "sub/.hidden",
]


@pytest.mark.parametrize("odd", ODD_NAMES, ids=repr)
def test_whatever_publish_accepts_pull_accepts(client, bucket, tmp_path, odd):
    from modelsync.pull import pull

    from .helpers import tree

    files = {"config.yaml": b"a: 1\n", odd: b"weights"}
    folder = write_model(tmp_path / "src", files)
    try:
        publish_directory(client, bucket, "m", folder, part_size=PART)
    except ModelsyncError as exc:
        assert "rename it" in str(exc) and "\n" not in str(exc).replace("\\n", "")
        assert read_latest(client, bucket, "m") is None  # LATEST never points at an unpullable version
        return
    pull(client, bucket, tmp_path / "d")
    assert tree(tmp_path / "d" / "m") == files


@pytest.mark.parametrize("odd, fragment", [("w\\eights.bin", "backslash"),
                                           (os.fsdecode(b"caf\xe9.bin"), "not valid UTF-8")], ids=["backslash", "utf8"])
def test_publish_refuses_a_name_pull_would_refuse_in_one_line(bucket, tmp_path, s3_client, odd, fragment):
    folder = write_model(tmp_path / "m", {"config.yaml": b"a: 1\n", odd: b"weights"})
    proc = run_cli("publish", folder, "--name", "m", "--bucket", bucket)
    assert proc.returncode == 2
    assert_one_line_error(proc, fragment, "rename it")
    assert keys(s3_client, bucket) == []  # refused before anything was uploaded


def test_republishing_repairs_missing_objects_and_refuses_wrong_ones_without_replacing_them(
        client, s3_client, bucket, tmp_path):
    """Review finding 2: the 'unchanged' shortcut must not trust a version whose objects are gone. A missing
    object is uploaded again; a wrong one cannot be replaced (If-None-Match): one line, until an operator
    deletes it."""
    from modelsync.pull import pull

    from .helpers import tree

    files = model_files()
    folder = write_model(tmp_path / "m", files)
    v = publish_directory(client, bucket, "m", folder, part_size=PART).version
    s3_client.delete_object(Bucket=bucket, Key=f"models/m/{v}/files/model.pth")
    s3_client.put_object(Bucket=bucket, Key=f"models/m/{v}/files/config.yaml", Body=b"shorter")
    proc = run_cli("pull", "--bucket", bucket, "--dest", tmp_path / "d")
    assert proc.returncode == 1
    assert_one_line_error(proc, f"version {v} of m is incomplete in the bucket", "republish it (modelsync publish)")

    proc = run_cli("publish", folder, "--name", "m", "--bucket", bucket)
    assert proc.returncode == 1
    assert_one_line_error(proc, f"s3://{bucket}/models/m/{v}/files/config.yaml holds other bytes (7 bytes)",
                          "never replaced", "delete that object")
    assert s3_client.get_object(Bucket=bucket, Key=f"models/m/{v}/files/config.yaml")["Body"].read() == b"shorter"

    s3_client.delete_object(Bucket=bucket, Key=f"models/m/{v}/files/config.yaml")  # the operator's step
    repaired = publish_directory(client, bucket, "m", folder, part_size=PART)
    assert repaired.version == v and not repaired.unchanged
    assert repaired.uploaded_files == 2 and repaired.skipped_files == 2
    pull(client, bucket, tmp_path / "d", part_size=PART)
    assert tree(tmp_path / "d" / "m") == files
    again = publish_directory(client, bucket, "m", folder, part_size=PART)
    assert again.unchanged and again.uploaded_files == 0


def test_a_resumed_publish_reads_back_what_is_there_and_refuses_other_bytes(client, s3_client, bucket, tmp_path):
    """Review finding 8: resuming checks the bytes, not the size or the stored sha256 metadata; an object of
    other bytes is refused, never replaced."""
    files = model_files()
    folder = write_model(tmp_path / "m", files)
    v = publish_directory(client, bucket, "m", folder, part_size=PART).version
    s3_client.delete_object(Bucket=bucket, Key=f"models/m/{v}/manifest.json")  # as a killed publish leaves it
    s3_client.delete_object(Bucket=bucket, Key="models/m/LATEST")
    resumed = publish_directory(client, bucket, "m", folder, part_size=PART)  # every object read back: all good
    assert resumed.version == v and resumed.uploaded_files == 0 and resumed.skipped_files == 4
    s3_client.delete_object(Bucket=bucket, Key=f"models/m/{v}/manifest.json")
    s3_client.delete_object(Bucket=bucket, Key="models/m/LATEST")
    wrong = b"seed: 9\n"  # same size as config.yaml, other bytes, and the sha256 metadata of the right ones
    assert len(wrong) == len(files["config.yaml"])
    s3_client.put_object(Bucket=bucket, Key=f"models/m/{v}/files/config.yaml", Body=wrong,
                         Metadata={"sha256": sha256(files["config.yaml"])})
    with pytest.raises(ModelsyncError, match=f"models/m/{v}/files/config.yaml holds other bytes"):
        publish_directory(client, bucket, "m", folder, part_size=PART)
    assert s3_client.get_object(Bucket=bucket, Key=f"models/m/{v}/files/config.yaml")["Body"].read() == wrong
    assert f"models/m/{v}/manifest.json" not in keys(s3_client, bucket) and "models/m/LATEST" not in keys(s3_client, bucket)


def test_a_file_rewritten_while_publishing_fails_the_publish_and_latest_stays(
        bucket, s3_client, proxy, proxy_client, tmp_path):
    """Review finding 8: a file changed between hashing and upload must not become a version."""
    files = {"a.bin": b"a" * 5000, "b.bin": b"b" * 5000, "c.bin": b"c" * 5000}
    folder = write_model(tmp_path / "m", files)
    rewritten = []

    def rewrite_the_others(method, path, count):
        if method == "PUT" and "/files/" in path and not rewritten:
            first = path.rsplit("/", 1)[-1]
            for other in files:
                if other != first:  # same size, other bytes: only the sha256 could tell
                    with open(os.path.join(folder, other), "wb") as handle:
                        handle.write(b"X" * 5000)
                    rewritten.append(other)
        return None

    proxy.fault = rewrite_the_others
    with pytest.raises(ModelsyncError, match="changed while publishing: publish again"):
        publish_directory(proxy_client, bucket, "m", folder, part_size=PART, concurrency=1)
    assert rewritten
    left = keys(s3_client, bucket)
    assert "models/m/LATEST" not in left and not any(k.endswith("manifest.json") for k in left)
    # The objects of the rewritten files may hold the new bytes under the old sha256 and cannot be replaced
    # (If-None-Match): the folder put back as it was hashed publishes that version again, and is refused.
    originals = {path: open(os.path.join(folder, path), "rb").read() for path in files}
    for path in rewritten:
        with open(os.path.join(folder, path), "wb") as handle:
            handle.write(files[path])
    proxy.fault = lambda method, path, count: None
    with pytest.raises(ModelsyncError, match="holds other bytes"):
        publish_directory(proxy_client, bucket, "m", folder, part_size=PART, concurrency=1)
    assert "models/m/LATEST" not in keys(s3_client, bucket)
    for path, content in originals.items():
        with open(os.path.join(folder, path), "wb") as handle:
            handle.write(content)
    # The folder as it is now (other content: another version) publishes for real.
    result = publish_directory(proxy_client, bucket, "m", folder, part_size=PART, concurrency=1)
    for path in files:
        key = f"models/m/{result.version}/files/{path}"
        assert s3_client.get_object(Bucket=bucket, Key=key)["Body"].read() == open(os.path.join(folder, path), "rb").read()


# -- a version's objects are written once (If-None-Match: *) -----------------------------------------------


def object_versions(s3_client, bucket, key) -> int:
    return len([v for v in s3_client.list_object_versions(Bucket=bucket, Prefix=key).get("Versions", [])
                if v["Key"] == key])


def hide_objects_from_the_list(monkeypatch):
    """The LIST of a publish finds nothing, as when another publish writes the same version right after it."""
    import modelsync.publish

    monkeypatch.setattr(modelsync.publish, "list_keys", lambda *args, **kwargs: iter(()))


def test_a_second_publish_of_a_version_writes_none_of_its_objects_again(
        client, s3_client, bucket, tmp_path, monkeypatch):
    s3_client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    files = model_files()  # model.pth is bigger than a part: a multipart upload, completed conditionally
    folder = write_model(tmp_path / "m", files)
    v = publish_directory(client, bucket, "m", folder, part_size=PART).version
    hide_objects_from_the_list(monkeypatch)
    again = publish_directory(client, bucket, "m", folder, part_size=PART)  # every upload answered 412
    assert again.version == v and again.uploaded_files == 0 and again.skipped_files == len(files)
    for key in [f"models/m/{v}/files/{p}" for p in files] + [f"models/m/{v}/manifest.json"]:
        assert object_versions(s3_client, bucket, key) == 1, key  # written once, never again


@pytest.mark.parametrize("path", ["config.yaml", "model.pth"], ids=["put", "multipart"])
def test_publish_cannot_replace_an_object_of_a_version(client, s3_client, bucket, tmp_path, monkeypatch, path):
    """What is under files/ stays as it is, whatever a publish uploads there: the upload is conditional
    (without If-None-Match this publish would replace the object and succeed)."""
    files = model_files()
    folder = write_model(tmp_path / "m", files)
    v = publish_directory(client, bucket, "m", folder, part_size=PART).version
    key = f"models/m/{v}/files/{path}"
    s3_client.delete_object(Bucket=bucket, Key=f"models/m/{v}/manifest.json")
    other = b"o" * len(files[path])
    s3_client.put_object(Bucket=bucket, Key=key, Body=other)
    hide_objects_from_the_list(monkeypatch)
    with pytest.raises(ModelsyncError, match=f"{key} holds other bytes .* never replaced"):
        publish_directory(client, bucket, "m", folder, part_size=PART)
    assert s3_client.get_object(Bucket=bucket, Key=key)["Body"].read() == other
    assert f"models/m/{v}/manifest.json" not in keys(s3_client, bucket)


def test_the_manifest_is_written_once_and_a_concurrent_one_of_the_same_files_is_used(
        client, s3_client, bucket, tmp_path, monkeypatch):
    import modelsync.publish

    s3_client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    folder = write_model(tmp_path / "m", model_files())
    first = publish_directory(client, bucket, "m", folder, part_size=PART)
    created = read_latest(client, bucket, "m").created
    s3_client.delete_object(Bucket=bucket, Key="models/m/LATEST")
    real = modelsync.publish.read_manifest
    calls = []

    def not_there_yet(*args, **kwargs):  # the other publish writes the manifest after this one looked
        calls.append(args)
        return None if len(calls) == 1 else real(*args, **kwargs)

    monkeypatch.setattr(modelsync.publish, "read_manifest", not_there_yet)
    again = publish_directory(client, bucket, "m", folder, part_size=PART)
    assert again.version == first.version and len(calls) == 2  # 412 on the manifest, then the one there is read
    assert object_versions(s3_client, bucket, f"models/m/{first.version}/manifest.json") == 1
    assert read_latest(client, bucket, "m").created == created  # LATEST moved to the manifest that was there


def test_every_write_of_a_file_or_manifest_sends_if_none_match_and_a_409_is_tried_again(
        bucket, s3_client, proxy, proxy_client, tmp_path):
    files = model_files()
    folder = write_model(tmp_path / "m", files)
    proxy.fault = lambda method, path, count: (  # a concurrent conditional write of each key, once
        "conflict" if method == "PUT" and count == 1 and ("/files/" in path or path.endswith("/manifest.json")) else None)
    result = publish_directory(proxy_client, bucket, "m", folder, part_size=PART)
    prefix = f"/{bucket}/models/m/{result.version}/"
    creating = [(method, target, headers) for method, target, headers in proxy.requests
                if target.startswith(prefix) and (method == "PUT" and "partNumber=" not in target
                                                  or method == "POST" and "uploadId=" in target)]
    assert {t.split("?")[0][len(prefix):] for _m, t, _h in creating} == \
        {f"files/{p}" for p in files} | {"manifest.json"}
    assert all(headers.get("If-None-Match") == "*" for _m, _t, headers in creating), creating
    assert any(m == "POST" for m, _t, _h in creating)  # the multipart upload's completion
    others = [t for m, t, h in proxy.requests if m == "PUT" and t == f"/{bucket}/models/m/LATEST"]
    assert others and all("If-None-Match" not in h for m, t, h in proxy.requests if t in others)
    for path, content in files.items():  # each key's first PUT was answered 409, then retried
        assert s3_client.get_object(Bucket=bucket, Key=f"models/m/{result.version}/files/{path}")["Body"].read() == content
