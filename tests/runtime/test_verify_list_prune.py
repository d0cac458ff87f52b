import json
import os

from modelsync.manifest import created_order, read_manifest
from modelsync.prune import prune_bucket
from modelsync.pull import pull
from modelsync.store import LocalStore

from .helpers import PART, model_files, run_cli, tree


def pulled(client, bucket, publish, tmp_path, files=None):
    files = files or model_files()
    publish("m", files)
    dest = tmp_path / "d"
    pull(client, bucket, dest)
    return dest, files


def test_verify_passes_on_a_pulled_tree(client, bucket, publish, tmp_path):
    dest, _ = pulled(client, bucket, publish, tmp_path)
    for extra in ([], ["--deep"]):
        proc = run_cli("verify", "--dest", dest, *extra)
        assert proc.returncode == 0, proc.stderr
        assert proc.stderr == "" and ": ok" in proc.stdout


def test_verify_reports_size_problems_missing_and_extra_files(client, bucket, publish, tmp_path):
    dest, _ = pulled(client, bucket, publish, tmp_path)
    with open(dest / "m" / "model.pth", "r+b") as handle:
        handle.truncate(10)
    os.unlink(dest / "m" / "config.yaml")
    (dest / "m" / "stray.txt").write_text("?")
    proc = run_cli("verify", "--dest", dest)
    assert proc.returncode == 1
    assert sorted(proc.stderr.splitlines()) == [
        "m/config.yaml: missing",
        f"m/model.pth: size 10 but the manifest says {3 * PART + 12345}",
        "m/stray.txt: not in the manifest",
    ]


def test_a_flipped_byte_that_sizes_miss_is_caught_by_its_stat_and_by_deep(client, bucket, publish, tmp_path):
    dest, _ = pulled(client, bucket, publish, tmp_path)
    with open(dest / "m" / "model.pth", "r+b") as handle:
        handle.seek(2_000_000)
        byte = handle.read(1)
        handle.seek(2_000_000)
        handle.write(bytes([byte[0] ^ 1]))
    for extra in ([], ["--deep"]):  # the write moved the file's mtime and ctime off its record: it is hashed
        proc = run_cli("verify", "--dest", dest, *extra)
        assert proc.returncode == 1
        assert proc.stderr.startswith("m/model.pth: changed since it was verified: sha256 "), proc.stderr
        assert proc.stderr.endswith("does not match the manifest\n")


def test_verify_of_an_empty_or_missing_dest_or_model_fails(tmp_path, client, bucket, publish):
    assert "does not exist" in run_cli("verify", "--dest", tmp_path / "nowhere").stderr
    (tmp_path / "empty").mkdir()
    proc = run_cli("verify", "--dest", tmp_path / "empty")
    assert proc.returncode == 1 and "no models under" in proc.stderr
    dest, _ = pulled(client, bucket, publish, tmp_path)
    proc = run_cli("verify", "--dest", dest, env={"MODELSYNC_MODELS": "m,other"})
    assert proc.returncode == 1 and "other: not installed" in proc.stderr
    wrong = run_cli("verify", "--dest", dest, "--model", "m@0123456789abcdef")
    assert wrong.returncode == 1 and f"m@0123456789abcdef is not in {dest} (no verified record" in wrong.stderr


def test_list_shows_versions_sizes_and_latest(bucket, publish, s3_client):
    v1 = publish("alpha", {"a": b"x" * 2048})
    v2 = publish("alpha", {"a": b"y" * 4096, "b": b"z"})
    publish("beta", {"c": b"1"})
    proc = run_cli("list", "--bucket", bucket, check=True)
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["MODEL", "VERSION", "CREATED", "FILES", "SIZE", "LATEST"]
    row2 = next(l for l in lines if v2 in l).split()
    row1 = next(l for l in lines if v1 in l).split()
    assert row2[0] == "alpha" and row2[3] == "2" and row2[4:6] == ["4.0", "KiB"] and row2[-1] == "*"
    assert row1[3] == "1" and row1[-1] != "*"
    s3_client.put_object(Bucket=bucket, Key="models/beta/broken/manifest.json", Body=b"{not json")
    listed = run_cli("list", "--bucket", bucket, check=True).stdout.splitlines()
    assert ["beta", "broken", "(no", "manifest)", "0", "0", "B"] in [line.split() for line in listed]
    data = json.loads(run_cli("list", "--bucket", bucket, "--json", check=True).stdout)
    alpha = next(m for m in data if m["name"] == "alpha")
    assert alpha["latest"] == v2 and {v["version"] for v in alpha["versions"]} == {v1, v2}


def test_prune_bucket_keeps_the_newest_versions_and_latest(client, s3_client, bucket, publish):
    versions = [publish("m", {"a": bytes([i]) * 100}) for i in range(4)]
    # created has one-second resolution: make the order explicit for the test.
    for i, v in enumerate(versions):
        key = f"models/m/{v}/manifest.json"
        data = json.loads(s3_client.get_object(Bucket=bucket, Key=key)["Body"].read())
        data["created"] = f"2026-01-0{i + 1}T00:00:00Z"
        s3_client.put_object(Bucket=bucket, Key=key, Body=json.dumps(data))
    s3_client.put_object(Bucket=bucket, Key="models/m/inprogress/files/x", Body=b"x")
    dry = run_cli("prune", "--bucket", bucket, "--keep", "2", "--dry-run", check=True)
    assert f"would remove m@{versions[0]}" in dry.stdout and f"would remove m@{versions[1]}" in dry.stdout
    report = prune_bucket(client, bucket, prefix="models/", keep=2)
    assert sorted(report.removed) == sorted(f"m@{v}" for v in versions[:2])
    left = {o["Key"].split("/")[2] for o in s3_client.list_objects_v2(Bucket=bucket)["Contents"]}
    assert left == {versions[2], versions[3], "LATEST", "inprogress"}
    # The version LATEST points to is always kept, also when it is not among the newest.
    s3_client.put_object(Bucket=bucket, Key="models/m/LATEST", Body=json.dumps({"version": versions[2]}))
    report = prune_bucket(client, bucket, prefix="models/", keep=1)
    assert report.removed == [] and sorted(report.kept) == sorted(f"m@{v}" for v in versions[2:])


def test_prune_keeps_the_newest_of_versions_published_within_one_second(client, s3_client, bucket, publish):
    versions = [publish("m", {"a": bytes([i]) * 100}) for i in range(3)]  # well within a second here
    created = [read_manifest(client, bucket, "m", v).created for v in versions]
    assert created == sorted(created, key=created_order) and len(set(created)) == 3
    report = prune_bucket(client, bucket, prefix="models/", keep=1)
    assert report.kept == [f"m@{versions[2]}"]  # the newest, which is also LATEST
    assert sorted(report.removed) == sorted(f"m@{v}" for v in versions[:2])


def test_created_stamps_of_both_precisions_sort_in_time_order():
    stamps = ["2026-01-01T00:00:01Z", "2026-01-01T00:00:00.999999Z", "2026-01-01T00:00:00Z", None, "garbage"]
    assert sorted(stamps, key=created_order, reverse=True)[:3] == stamps[:3]


def test_prune_local_removes_versions_that_are_no_longer_current(client, bucket, publish, tmp_path):
    dest, _ = pulled(client, bucket, publish, tmp_path, files={"a": b"1", "big": b"b" * 5000})
    store = LocalStore(dest)
    old = store.current_version("m")
    new_files = {"a": b"2", "big": b"b" * 5000}
    publish("m", new_files)
    pull(client, bucket, dest)
    new = store.current_version("m")
    proc = run_cli("prune", "--local", "--dest", dest, check=True)
    assert f"removed m@{old}" in proc.stdout
    assert store.version_dirs("m") == [new] and store.recorded_versions("m") == [new]
    assert tree(dest / "m") == new_files  # the hard-linked file survives in the current version
    assert run_cli("verify", "--dest", dest, "--deep").returncode == 0


def test_prune_bucket_deletes_the_manifest_alone_first_and_stops_on_error(
        s3_client, bucket, publish, proxy, proxy_client):
    """Review finding 2: a half-deleted version must never keep its manifest."""
    import pytest

    from modelsync.errors import JobFailed

    old = publish("m", {"a": b"1" * 100, "b": b"2" * 100})
    new = publish("m", {"a": b"3" * 100, "b": b"4" * 100})
    for version, day in ((old, 1), (new, 2)):
        key = f"models/m/{version}/manifest.json"
        data = json.loads(s3_client.get_object(Bucket=bucket, Key=key)["Body"].read())
        data["created"] = f"2026-01-0{day}T00:00:00Z"
        s3_client.put_object(Bucket=bucket, Key=key, Body=json.dumps(data))
    seen = []

    def refuse_batch_deletes(method, path, count):
        seen.append((method, path))
        return "slowdown" if method == "POST" else None  # DeleteObjects is a POST ?delete

    proxy.fault = refuse_batch_deletes
    with pytest.raises(JobFailed, match="SlowDown"):
        prune_bucket(proxy_client, bucket, prefix="models/", keep=1)
    deletes = [(m, p) for m, p in seen if m in ("DELETE", "POST")]
    assert deletes[0] == ("DELETE", f"/{bucket}/models/m/{old}/manifest.json")
    left = {o["Key"] for o in s3_client.list_objects_v2(Bucket=bucket)["Contents"]}
    assert f"models/m/{old}/manifest.json" not in left and f"models/m/{old}/files/a" in left
    assert f"models/m/{new}/manifest.json" in left


def test_verify_of_a_dest_that_is_a_file_says_so(tmp_path):
    """Review finding 6: it used to say the file 'does not exist'."""
    (tmp_path / "file").write_text("x")
    proc = run_cli("verify", "--dest", tmp_path / "file")
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [f"{tmp_path / 'file'} is not a directory: point --dest / MODELSYNC_DEST "
                                        "at the model root"]


def test_verify_reports_a_model_path_that_is_a_real_directory_as_a_problem(tmp_path):
    (tmp_path / "d" / "m").mkdir(parents=True)
    proc = run_cli("verify", "--dest", tmp_path / "d", "--model", "m")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "not a modelsync link: move it away and pull again" in proc.stderr


def test_prune_local_ignores_and_cleans_the_pin_of_a_dead_pull(client, bucket, publish, tmp_path):
    import subprocess
    import sys

    dest, _ = pulled(client, bucket, publish, tmp_path, files={"a": b"1"})
    store = LocalStore(dest)
    old = store.current_version("m")
    publish("m", {"a": b"2"})
    pull(client, bucket, dest)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    host = store.temp_name().split(".")[0]
    pin = dest / ".modelsync" / "tmp" / f"{host}.{int(dead.stdout)}.0123abcd.m@{old}.pin"
    pin.write_text("")
    assert store.pinned_versions("m") == set()
    proc = run_cli("prune", "--local", "--dest", dest, check=True)
    assert f"removed m@{old}" in proc.stdout and not pin.exists()
