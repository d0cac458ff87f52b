"""Every failure the issue names: retries, checksum mismatch, bad input, path escape."""

import json
import os
import time

import pytest

from modelsync.errors import JobFailed, ModelsyncError
from modelsync.pull import pull
from modelsync.store import LocalStore

from .helpers import PART, assert_one_line_error, model_files, run_cli, sha256, tree


def only_files(action, times=None):
    """Fault for object GETs of model files: always, or for the first `times` requests of each."""
    def fault(method, path, count):
        if method == "GET" and "/files/" in path and (times is None or count <= times):
            return action
        return None
    return fault


def test_throttling_is_retried_with_backoff(publish, bucket, proxy, proxy_client, tmp_path):
    files = model_files()
    publish("m", files)
    proxy.fault = only_files("slowdown", times=2)
    result = pull(proxy_client, bucket, tmp_path / "d", part_size=PART)
    assert tree(tmp_path / "d" / "m") == files
    assert result.downloaded_files == 4
    parts = {"model.pth": 4}  # ranged: 3 MiB + a bit in 1 MiB parts
    for path, count in proxy.file_gets().items():
        assert count == parts.get(path.rsplit("/", 1)[-1], 1) + 2  # 2 refused, then served


def test_persistent_throttling_fails_cleanly_after_bounded_attempts(publish, bucket, proxy, proxy_env, tmp_path):
    publish("m", {"only.bin": b"x" * 10_000})
    proxy.fault = only_files("slowdown")
    started = time.monotonic()
    proc = run_cli("pull", "--bucket", bucket, "--dest", tmp_path / "d", env={**proxy_env, "AWS_MAX_ATTEMPTS": "3"})
    assert proc.returncode == 1
    assert_one_line_error(proc, "SlowDown", "retry later")
    assert time.monotonic() - started < 30
    assert max(proxy.file_gets().values()) == 3  # bounded: AWS_MAX_ATTEMPTS
    assert not os.path.lexists(tmp_path / "d" / "m")


def test_a_broken_body_is_retried(publish, bucket, proxy, proxy_client, tmp_path):
    files = model_files()
    publish("m", files)
    proxy.fault = only_files("truncate", times=1)
    pull(proxy_client, bucket, tmp_path / "d", part_size=PART)
    assert tree(tmp_path / "d" / "m") == files


def test_a_body_that_always_breaks_fails_after_bounded_attempts(publish, bucket, proxy, proxy_env, tmp_path):
    publish("m", {"only.bin": b"x" * 10_000})
    proxy.fault = only_files("truncate")
    proc = run_cli("pull", "--bucket", bucket, "--dest", tmp_path / "d", env=proxy_env)
    assert proc.returncode == 1
    assert_one_line_error(proc, "only.bin", "failed after 5 attempts")
    assert max(proxy.file_gets().values()) == 5
    assert not os.path.lexists(tmp_path / "d" / "m")
    assert os.listdir(tmp_path / "d" / ".modelsync" / "tmp") == []


@pytest.mark.parametrize(("args", "env"), [(["--download-attempts", "2"], {}),
                                          ([], {"MODELSYNC_DOWNLOAD_ATTEMPTS": "2"})])
def test_the_broken_download_bound_is_configurable(publish, bucket, proxy, proxy_env, tmp_path, args, env):
    publish("m", {"only.bin": b"x" * 10_000})
    proxy.fault = only_files("truncate")
    # AWS_MAX_ATTEMPTS bounds each request, not a body that breaks while it is read.
    proc = run_cli("pull", "--bucket", bucket, "--dest", tmp_path / "d", *args,
                   env={**proxy_env, "AWS_MAX_ATTEMPTS": "9", **env})
    assert_one_line_error(proc, "only.bin", "failed after 2 attempts")
    assert max(proxy.file_gets().values()) == 2


def test_a_bad_download_attempts_value_is_one_line(bucket, tmp_path):
    proc = run_cli("pull", "--bucket", bucket, "--dest", tmp_path / "d", env={"MODELSYNC_DOWNLOAD_ATTEMPTS": "x"})
    assert_one_line_error(proc, "MODELSYNC_DOWNLOAD_ATTEMPTS='x' is not a whole number")
    assert proc.returncode == 2


def test_a_checksum_mismatch_is_fetched_again_once(publish, bucket, proxy, proxy_client, tmp_path):
    files = model_files()
    publish("m", files)
    proxy.fault = only_files("corrupt", times=1)
    result = pull(proxy_client, bucket, tmp_path / "d", part_size=PART)
    assert tree(tmp_path / "d" / "m") == files and result.downloaded_files == 4
    gets = proxy.file_gets()
    assert gets[f"/{bucket}/models/m/{result.models[0].version}/files/config.yaml"] == 2


def test_a_persistent_checksum_mismatch_fails_naming_the_file_and_keeps_the_old_version(
        client, publish, bucket, proxy, proxy_env, tmp_path):
    old = {"config.yaml": b"old\n", "w.bin": b"w" * 3000}
    publish("m", old)
    dest = tmp_path / "d"
    pull(client, bucket, dest)
    new_version = publish("m", {"config.yaml": b"new!\n", "w.bin": b"w" * 3000})

    def fault(method, path, count):  # the ranged big-file path and the single-GET path both covered
        return "corrupt" if method == "GET" and path.endswith("/config.yaml") else None

    proxy.fault = fault
    proc = run_cli("pull", "--bucket", bucket, "--dest", dest, env=proxy_env)
    assert proc.returncode == 1
    assert_one_line_error(proc, "m/config.yaml", "sha256", "republish")
    assert proxy.file_gets()[f"/{bucket}/models/m/{new_version}/files/config.yaml"] == 2  # once again, then stop
    assert tree(dest / "m") == old  # nothing corrupt renamed into the live tree
    vdir = LocalStore(dest).version_dir("m", new_version)
    assert not os.path.exists(os.path.join(vdir, "config.yaml"))
    assert os.listdir(dest / ".modelsync" / "tmp") == []


def test_corrupt_ranges_of_a_big_file_are_caught(publish, bucket, proxy, proxy_client, tmp_path):
    files = model_files()
    publish("m", files)
    proxy.fault = lambda method, path, count: "corrupt" if path.endswith("model.pth") else None
    with pytest.raises(JobFailed, match="model.pth"):
        pull(proxy_client, bucket, tmp_path / "d", part_size=PART)
    assert not os.path.lexists(tmp_path / "d" / "m")


def test_missing_bucket_is_one_line(tmp_path, s3_endpoint):
    proc = run_cli("pull", "--bucket", "no-such-bucket-here", "--dest", tmp_path / "d")
    assert proc.returncode == 2
    assert_one_line_error(proc, "bucket 'no-such-bucket-here' does not exist", "MODELSYNC_BUCKET")


def test_no_bucket_configured_is_one_line(tmp_path, s3_endpoint):
    proc = run_cli("pull", "--dest", tmp_path / "d", env={"MODELSYNC_BUCKET": ""})
    assert proc.returncode == 2
    assert_one_line_error(proc, "no bucket given", "MODELSYNC_BUCKET")


def test_missing_credentials_is_one_line(bucket, tmp_path):
    env = {"AWS_ACCESS_KEY_ID": None, "AWS_SECRET_ACCESS_KEY": None, "AWS_SESSION_TOKEN": None,
           "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": None, "AWS_CONTAINER_CREDENTIALS_FULL_URI": None,
           "AWS_WEB_IDENTITY_TOKEN_FILE": None, "AWS_EC2_METADATA_DISABLED": "true"}
    proc = run_cli("pull", "--bucket", bucket, "--dest", tmp_path / "d", env=env)
    assert proc.returncode == 2
    assert_one_line_error(proc, "no AWS credentials", "task role")


def test_missing_model_and_version_are_one_line(publish, bucket, tmp_path):
    publish("m", {"a": b"1"})
    missing_model = run_cli("pull", "--bucket", bucket, "--dest", tmp_path / "d", "--model", "ghost")
    assert missing_model.returncode == 2
    assert_one_line_error(missing_model, "model 'ghost' not found", "publish it first")
    missing_version = run_cli("pull", "--bucket", bucket, "--dest", tmp_path / "d", "--model", "m@0000000000000000")
    assert missing_version.returncode == 2
    assert_one_line_error(missing_version, "version '0000000000000000' of model 'm' not found", "modelsync list")
    bad_env = run_cli("pull", "--bucket", bucket, "--dest", tmp_path / "d", env={"MODELSYNC_CONCURRENCY": "lots"})
    assert bad_env.returncode == 2
    assert_one_line_error(bad_env, "MODELSYNC_CONCURRENCY='lots' is not a whole number")
    assert not os.path.exists(tmp_path / "d" / "m")


def test_dest_that_is_a_real_directory_is_not_overwritten(client, publish, bucket, tmp_path):
    publish("m", {"a": b"1"})
    (tmp_path / "d" / "m").mkdir(parents=True)
    (tmp_path / "d" / "m" / "mine.txt").write_text("keep")
    with pytest.raises(ModelsyncError, match="not a modelsync link: move it away"):
        pull(client, bucket, tmp_path / "d")
    assert (tmp_path / "d" / "m" / "mine.txt").read_text() == "keep"


def put_forged_version(s3_client, bucket, name, version, paths):
    """A manifest written by someone else than modelsync publish (hostile or buggy)."""
    files = []
    for path in paths:
        s3_client.put_object(Bucket=bucket, Key=f"models/{name}/{version}/files/{path}", Body=b"evil")
        files.append({"path": path, "size": 4, "sha256": sha256(b"evil")})
    manifest = {"name": name, "version": version, "created": "2026-01-01T00:00:00Z", "source": {}, "files": files}
    s3_client.put_object(Bucket=bucket, Key=f"models/{name}/{version}/manifest.json", Body=json.dumps(manifest))
    s3_client.put_object(Bucket=bucket, Key=f"models/{name}/LATEST", Body=json.dumps({"version": version}))


@pytest.mark.parametrize("path", ["../../escaped.txt", "/tmp/abs.txt", "ok/../../../escaped.txt"])
def test_manifest_paths_that_escape_are_refused(s3_client, bucket, tmp_path, path):
    put_forged_version(s3_client, bucket, "evil", "v1", ["fine.txt", path])
    dest = tmp_path / "inner" / "d"
    proc = run_cli("pull", "--bucket", bucket, "--dest", dest)
    assert proc.returncode == 1
    assert_one_line_error(proc, "unsafe path", "refused")
    written = [os.path.join(r, f) for r, _d, fs in os.walk(tmp_path) for f in fs]
    assert written == []  # not even the harmless file: the whole manifest is refused


def test_a_latest_pointer_that_escapes_is_refused(s3_client, bucket, tmp_path):
    s3_client.put_object(Bucket=bucket, Key="models/evil/LATEST", Body=json.dumps({"version": "../../x"}))
    proc = run_cli("pull", "--bucket", bucket, "--dest", tmp_path / "d", "--model", "evil")
    assert proc.returncode == 1
    assert_one_line_error(proc, "invalid version")


def test_a_dest_that_cannot_be_created_is_one_line(publish, bucket, tmp_path):
    publish("m", {"a": b"1"})
    (tmp_path / "file").write_text("not a directory")
    proc = run_cli("pull", "--bucket", bucket, "--dest", tmp_path / "file" / "models")
    assert proc.returncode == 2
    assert_one_line_error(proc, "cannot write to", "MODELSYNC_DEST")


@pytest.mark.parametrize("prefix", [None, "nothing/here/", "unfinished"])
def test_a_pull_with_nothing_to_pull_fails_naming_bucket_and_prefix(publish, bucket, tmp_path, s3_client, prefix):
    """Review finding 7: an empty bucket or a wrong prefix used to 'succeed' with no models."""
    if prefix == "unfinished":  # only a first publish still running (no LATEST yet)
        s3_client.put_object(Bucket=bucket, Key="models/three/abc/files/x", Body=b"x")
        prefix = None
    args = ["--prefix", prefix] if prefix else []
    if prefix:
        publish("m", {"a": b"1"})  # under models/, not under the prefix asked for
    proc = run_cli("pull", "--bucket", bucket, "--dest", tmp_path / "d", *args)
    assert proc.returncode == 1
    assert_one_line_error(proc, f"no models in s3://{bucket}/{prefix or 'models/'}", "--prefix")


def test_a_full_disk_names_the_file_that_could_not_be_written(publish, bucket, tmp_path):
    """Review finding 6: 'cannot write : No space left on device' named no file. A file size
    limit (RLIMIT_FSIZE, EFBIG) stands in for a full disk: the same OSError without a file name."""
    import resource
    import subprocess
    import sys

    from .helpers import merged_env

    publish("m", model_files())  # model.pth is 3 MiB and a bit

    def limit_file_size():
        resource.setrlimit(resource.RLIMIT_FSIZE, (1024 * 1024, 1024 * 1024))

    proc = subprocess.run([sys.executable, "-m", "modelsync", "pull", "--bucket", bucket, "--dest", str(tmp_path / "d")],
                          capture_output=True, text=True, env=merged_env({"MODELSYNC_PART_SIZE_MIB": "1"}),
                          preexec_fn=limit_file_size, timeout=60)
    assert proc.returncode == 1
    assert_one_line_error(proc, "model m: cannot write model.pth", "File too large", "check free space")
    assert not os.path.lexists(tmp_path / "d" / "m")
