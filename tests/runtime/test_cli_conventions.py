"""CLI conventions: one declaration per flag, s3:// locations, global AWS options, retry settings,
--help contents, -v error chains, pull --dry-run, verify/list --json, the list table, presigned URLs."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import urllib.request

import pytest

from modelsync.cli import build_parser
from modelsync.keys import load_signer
from modelsync.options import declared
from modelsync.pull import pull

from .helpers import assert_one_line_error, merged_env, model_files, run_cli, tree

DEAD_ENDPOINT = "http://127.0.0.1:9"  # discard port: nothing listens there


# --help ----------------------------------------------------------------------------------------
def test_every_subcommand_help_has_description_example_environment_and_exit_codes():
    parser = build_parser()
    subcommands = parser._subparsers._group_actions[0].choices
    assert {"publish", "pull", "verify", "view", "list", "prune", "serve", "healthcheck", "seed", "url"} <= set(
        subcommands)
    for name, sub in subcommands.items():
        text = sub.format_help()
        assert sub.description, f"{name}: no description"
        for section in ("examples:\n  modelsync ", "environment:\n", "exit codes:\n  0 "):
            assert section in text, f"{name} --help lacks {section!r}"
        for opt in declared(sub):
            for env in opt.envs:  # in the flag's own help and in the environment section
                assert text.count(env) >= 2, f"{name}: {env} not shown for {opt.flag}"
        assert "--endpoint-url" in text and "--region" in text and "--profile" in text


def test_help_shows_env_and_default_in_the_flag_line():
    proc = run_cli("pull", "--help", check=True)
    flat = " ".join(proc.stdout.split())
    assert "(env MODELSYNC_CONCURRENCY; default 16)" in flat
    assert "(env MODELSYNC_DOWNLOAD_ATTEMPTS; default 5)" in flat
    assert "(env MODELSYNC_TRUST_KEY; default no signature check)" in flat
    assert "AWS_RETRY_MODE" in flat and "AWS_MAX_ATTEMPTS" in flat


# one declaration: flag, then environment, then default; checked the same way -----------------------
def test_flag_beats_environment_and_bad_values_name_their_source(bucket, tmp_path):
    too_small = run_cli("pull", "--bucket", bucket, "--dest", tmp_path / "d", env={"MODELSYNC_CONCURRENCY": "0"})
    assert_one_line_error(too_small, "MODELSYNC_CONCURRENCY='0' is too small", "at least 1")
    flag = run_cli("pull", "--bucket", bucket, "--dest", tmp_path / "d", "--concurrency", "0")
    assert_one_line_error(flag, "--concurrency 0 is too small")
    # The flag wins over a bad environment value (which is then never read).
    proc = run_cli("list", "--bucket", bucket, env={"MODELSYNC_BUCKET": "s3://"})
    assert proc.returncode == 0, proc.stderr


# s3://BUCKET[/PREFIX] --------------------------------------------------------------------------------
def test_s3_urls_name_bucket_and_prefix_as_flag_or_environment(bucket, tmp_path):
    folder = tmp_path / "src"
    folder.mkdir()
    (folder / "a.bin").write_bytes(b"abc")
    version = run_cli("publish", folder, "--name", "m", "--bucket", f"s3://{bucket}/team/x", check=True).stdout.strip()
    listed = json.loads(run_cli("list", "--json", env={"MODELSYNC_BUCKET": f"s3://{bucket}/team/x/"},
                                check=True).stdout)
    assert [(m["name"], m["latest"]) for m in listed] == [("m", version)]
    # The same bucket under its default prefix (models/) holds nothing; the explicit prefix finds it.
    assert json.loads(run_cli("list", "--json", "--bucket", f"s3://{bucket}", check=True).stdout) == []
    assert json.loads(run_cli("list", "--json", "--bucket", bucket, "--prefix", "team/x", check=True).stdout)
    run_cli("pull", "--bucket", f"s3://{bucket}/team/x", "--dest", tmp_path / "d", check=True)
    assert tree(tmp_path / "d" / "m") == {"a.bin": b"abc"}


@pytest.mark.parametrize(("value", "fragment"), [
    ("s3://", "does not name a bucket"),
    ("s3:///models", "does not name a bucket"),
    ("https://example.com/b", "is not an S3 location"),
    ("s3://bad_name!/models", "does not name a bucket"),
    ("my/bucket", "does not name a bucket"),
])
def test_a_malformed_bucket_is_one_line(s3_endpoint, value, fragment):
    assert_one_line_error(run_cli("list", "--bucket", value), f"--bucket {value} {fragment}", "s3://NAME[/PREFIX]")
    from_env = run_cli("list", env={"MODELSYNC_BUCKET": value})
    assert_one_line_error(from_env, f"MODELSYNC_BUCKET={value!r} {fragment}")
    assert from_env.returncode == 2


def test_two_different_prefixes_are_refused(bucket):
    proc = run_cli("list", "--bucket", f"s3://{bucket}/a", "--prefix", "b")
    assert_one_line_error(proc, "two prefixes given", "give the prefix once")


# global --endpoint-url, --region, --profile -----------------------------------------------------------
def test_endpoint_url_flag_before_or_after_the_command_beats_the_environment(s3_endpoint, bucket, publish):
    publish("m", {"a": b"1"})
    dead = {"AWS_ENDPOINT_URL_S3": DEAD_ENDPOINT, "AWS_MAX_ATTEMPTS": "1"}
    assert run_cli("list", "--bucket", bucket, env=dead).returncode != 0  # the environment is in effect
    for args in (["--endpoint-url", s3_endpoint, "list"], ["list", "--endpoint-url", s3_endpoint]):
        proc = run_cli(*args, "--bucket", bucket, "--json", env=dead)
        assert proc.returncode == 0, proc.stderr
        assert [m["name"] for m in json.loads(proc.stdout)] == ["m"]
    # AWS_ENDPOINT_URL (without _S3) keeps working.
    plain = run_cli("list", "--bucket", bucket, env={"AWS_ENDPOINT_URL_S3": None, "AWS_ENDPOINT_URL": s3_endpoint})
    assert plain.returncode == 0, plain.stderr
    assert_one_line_error(run_cli("--endpoint-url", "localhost:9000", "list", "--bucket", bucket),
                          "--endpoint-url localhost:9000 is not an endpoint URL")
    # The variables are boto3's: a command that makes no S3 request does not judge them.
    down = run_cli("healthcheck", "--port", "1", "--timeout", "0.5", env={"AWS_ENDPOINT_URL_S3": "localhost:9000"})
    assert down.returncode == 1 and "unreachable" in down.stderr


def test_profile_flag_and_environment_pick_credentials(bucket, publish, tmp_path):
    publish("m", {"a": b"1"})
    credentials = tmp_path / "credentials"
    credentials.write_text("[ops]\naws_access_key_id = testing\naws_secret_access_key = testing\n")
    env = {"AWS_ACCESS_KEY_ID": None, "AWS_SECRET_ACCESS_KEY": None, "AWS_SHARED_CREDENTIALS_FILE": str(credentials)}
    assert run_cli("list", "--bucket", bucket, env=env).returncode == 2  # no credentials without the profile
    assert run_cli("--profile", "ops", "list", "--bucket", bucket, env=env).returncode == 0
    assert run_cli("list", "--bucket", bucket, env={**env, "AWS_PROFILE": "ops"}).returncode == 0
    missing = run_cli("list", "--profile", "nope", "--bucket", bucket, env=env)
    assert_one_line_error(missing, "nope", "--profile / AWS_PROFILE")
    assert missing.returncode == 2


def test_region_flag_and_environment_reach_the_client(bucket, publish):
    publish("m", {"a": b"1"})
    for args, env in ((["--region", "eu-west-3"], {}), ([], {"AWS_REGION": "eu-west-3", "AWS_DEFAULT_REGION": None}),
                      ([], {"AWS_DEFAULT_REGION": "eu-west-3"})):
        proc = run_cli(*args, "url", "m", "--bucket", bucket, env=env, check=True)
        assert "%2Feu-west-3%2Fs3%2Faws4_request" in proc.stdout, proc.stdout  # the SigV4 credential scope


# AWS_RETRY_MODE / AWS_MAX_ATTEMPTS -------------------------------------------------------------------
@pytest.mark.parametrize(("env", "fragment"), [
    ({"AWS_MAX_ATTEMPTS": "abc"}, "AWS_MAX_ATTEMPTS='abc' is not a whole number"),
    ({"AWS_MAX_ATTEMPTS": "0"}, "AWS_MAX_ATTEMPTS=0 is too small"),
    ({"AWS_RETRY_MODE": "foo"}, "AWS_RETRY_MODE='foo' is not a retry mode"),
])
@pytest.mark.parametrize("command", ["list", "pull", "url"])
def test_bad_retry_settings_are_one_line_exit_2(bucket, tmp_path, env, fragment, command):
    args = {"list": [], "pull": ["--dest", tmp_path / "d"], "url": ["m"]}[command]
    proc = run_cli(command, *args, "--bucket", bucket, env=env)
    assert_one_line_error(proc, fragment)
    assert proc.returncode == 2
    assert not os.path.exists(tmp_path / "d")


def test_retry_mode_and_attempts_are_honoured(s3_endpoint, monkeypatch):
    from modelsync.s3 import make_client

    assert make_client().meta.config.retries == {"mode": "adaptive", "total_max_attempts": 5}
    monkeypatch.setenv("AWS_RETRY_MODE", "standard")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "7")
    assert make_client().meta.config.retries == {"mode": "standard", "total_max_attempts": 7}


# -v / --verbose ----------------------------------------------------------------------------------
def test_verbose_shows_the_botocore_error_chain(s3_endpoint):
    quiet = run_cli("list", "--bucket", "no-such-bucket-here")
    assert_one_line_error(quiet, "does not exist")
    for args in (["-v", "list"], ["list", "--verbose"]):
        loud = run_cli(*args, "--bucket", "no-such-bucket-here")
        lines = loud.stderr.splitlines()
        assert loud.returncode == 2 and lines[0] == quiet.stderr.strip()
        assert any(line.startswith("  caused by: botocore.") and "(NoSuchBucket) when calling the ListObjectsV2" in line
                   for line in lines[1:]), loud.stderr
        assert "Traceback" not in loud.stderr


# pull --dry-run ---------------------------------------------------------------------------------
def snapshot(root) -> dict:
    """Every entry under root, not following links: files with their bytes, links with their targets,
    directories, each with its mtime."""
    found = {}
    for current, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(current, name)
            st = os.lstat(path)
            if os.path.islink(path):
                found[path] = ("link", os.readlink(path), st.st_mtime_ns)
            elif os.path.isdir(path):
                found[path] = ("dir", None, st.st_mtime_ns)
            else:
                with open(path, "rb") as handle:
                    found[path] = ("file", handle.read(), st.st_mtime_ns)
    return found


def test_pull_dry_run_prints_the_plan_and_writes_nothing(client, bucket, publish, tmp_path):
    files = model_files()
    publish("m", files)
    dest = tmp_path / "d"
    pull(client, bucket, dest)
    changed = {**files, "config.yaml": b"changed: true\n", "new.bin": b"n" * 5000}
    v2 = publish("m", changed)
    publish("other", {"x.bin": b"x" * 100})
    before = snapshot(dest)
    proc = run_cli("pull", "--bucket", bucket, "--dest", dest, "--dry-run", check=True)
    assert snapshot(dest) == before  # byte-identical: no directory, temp file, lock or pin
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    planned = {(p["model"], p["path"]): (p["action"], p["bytes"]) for p in lines[:-1]}
    assert planned == {
        ("m", "config.yaml"): ("download", len(changed["config.yaml"])),
        ("m", "new.bin"): ("download", 5000),
        ("other", "x.bin"): ("download", 100),
        **{("m", p): ("link", len(c)) for p, c in files.items() if p != "config.yaml"},
    }
    assert lines[-1] == {"event": "summary", "action": "pull", "dry_run": True, "download_files": 3,
                         "download_bytes": len(changed["config.yaml"]) + 5100, "link_files": len(files) - 1,
                         "in_place_files": 0, "models": [f"m@{v2}", lines[-1]["models"][1]]}
    # Into a destination that does not exist: the plan, and still nothing created.
    fresh = tmp_path / "fresh"
    proc = run_cli("pull", "--bucket", bucket, "--dest", fresh, "--model", "other", "--dry-run", check=True)
    assert json.loads(proc.stdout.splitlines()[-1])["download_files"] == 1
    assert not os.path.lexists(fresh)


def test_pull_dry_run_with_a_trust_key_writes_nothing_and_a_missing_dest_is_no_traceback(bucket, publish,
                                                                                          tmp_path, pem_keys):
    """Reproduction: with --trust-key the dry run kept the verified signature in the store (a .sig under
    .modelsync/records), and into a destination that does not exist it crashed with a traceback."""
    key, pub = pem_keys
    publish("m", {"a.bin": b"a" * 10}, signer=load_signer(key))
    dest = tmp_path / "d"
    run_cli("pull", "--bucket", bucket, "--dest", dest, "--trust-key", pub, check=True)
    v2 = publish("m", {"a.bin": b"b" * 10}, signer=load_signer(key))
    before = snapshot(dest)
    proc = run_cli("pull", "--bucket", bucket, "--dest", dest, "--dry-run", "--trust-key", pub, check=True)
    assert snapshot(dest) == before
    assert json.loads(proc.stdout.splitlines()[-1])["models"] == [f"m@{v2}"]
    missing = tmp_path / "no" / "such" / "dest"
    proc = run_cli("pull", "--bucket", bucket, "--dest", missing, "--dry-run", "--trust-key", pub)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert json.loads(proc.stdout.splitlines()[-1])["download_files"] == 1
    assert not os.path.lexists(tmp_path / "no")


def test_pull_dry_run_of_a_pulled_version_plans_nothing(client, bucket, publish, tmp_path):
    publish("m", {"a.bin": b"a" * 10})
    dest = tmp_path / "d"
    pull(client, bucket, dest)
    proc = run_cli("pull", "--bucket", bucket, "--dest", dest, "--dry-run", check=True)
    summary, = [json.loads(line) for line in proc.stdout.splitlines()]
    assert summary["download_files"] == 0 and summary["in_place_files"] == 1


def test_pull_dry_run_of_an_unknown_model_is_one_line(bucket, publish, tmp_path):
    publish("m", {"a.bin": b"a"})
    proc = run_cli("pull", "--bucket", bucket, "--dest", tmp_path / "d", "--model", "nope", "--dry-run")
    assert_one_line_error(proc, "model 'nope' not found")
    assert not os.path.lexists(tmp_path / "d")


# verify --json, list --json, the list table -------------------------------------------------------------
def test_verify_json(client, bucket, publish, tmp_path):
    version = publish("m", {"a.bin": b"a" * 10, "b.bin": b"b"})
    dest = tmp_path / "d"
    pull(client, bucket, dest)
    good = run_cli("verify", "--dest", dest, "--json", check=True)
    assert json.loads(good.stdout) == {"ok": True, "dest": str(dest), "deep": False, "models": [
        {"name": "m", "version": version, "files": 2, "bytes": 11, "ok": True, "problems": []}]}
    os.unlink(dest / "m" / "b.bin")
    bad = run_cli("verify", "--dest", dest, "--json", "--deep")
    assert bad.returncode == 1
    result = json.loads(bad.stdout)
    assert result["ok"] is False and result["deep"] is True
    assert result["models"][0]["ok"] is False and result["models"][0]["problems"] == ["m/b.bin: missing"]


def test_list_table_columns_line_up_and_json_matches(bucket, publish):
    publish("a-rather-long-model-name-for-the-table", {"a.bin": b"a" * 10})
    publish("m", {"a.bin": b"a" * 2_000_000})
    second = publish("m", {"a.bin": b"b" * 30})
    proc = run_cli("list", "--bucket", bucket, check=True)
    lines = proc.stdout.splitlines()
    header = lines[0]
    created, files_end, size_end = header.index("CREATED"), header.index("FILES") + 5, header.index("SIZE") + 4
    stamp = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")
    assert len(lines) == 4
    for line in lines[1:]:
        assert stamp.match(line[created:]), (header, line)  # 27-character stamps start under CREATED
        assert line[files_end - 1].isdigit() and line[files_end] == " "
        assert line.startswith(("a-rather-long-model-name-for-the-table  ", "m  "))  # numbers end under their header
        assert line[size_end - 1] == "B" and line[size_end:size_end + 1] in ("", " ")
    listed = json.loads(run_cli("list", "--bucket", bucket, "--json", check=True).stdout)
    assert {m["name"]: m["latest"] for m in listed}["m"] == second
    assert {m["name"]: len(m["versions"]) for m in listed} == {"a-rather-long-model-name-for-the-table": 1, "m": 2}


# modelsync url ---------------------------------------------------------------------------------
def test_url_prints_presigned_urls_that_download_the_files(bucket, publish):
    files = {"model.bin": os.urandom(70_000), "sub/config.yaml": b"a: 1\n", "empty": b""}
    version = publish("m", files)
    publish("m", {"other.bin": b"newer"})  # LATEST moves on; the pinned version still answers
    proc = run_cli("url", f"m@{version}", "--bucket", bucket, "--expires", "120", check=True)
    rows = {path: rest for path, *rest in (line.split("\t") for line in proc.stdout.splitlines())}
    assert set(rows) == set(files)
    for path, (size, digest, url) in rows.items():
        assert (int(size), digest) == (len(files[path]), hashlib.sha256(files[path]).hexdigest())
        assert "X-Amz-Algorithm=AWS4-HMAC-SHA256" in url and "X-Amz-Expires=120" in url
        with urllib.request.urlopen(url, timeout=30) as response:  # no credentials: only the URL
            body = response.read()
        assert hashlib.sha256(body).hexdigest() == hashlib.sha256(files[path]).hexdigest()
    latest = run_cli("url", "m", "--bucket", bucket, check=True)
    assert [line.split("\t")[0] for line in latest.stdout.splitlines()] == ["other.bin"]


def test_url_receivers_check_size_and_sha256_as_the_help_shows(bucket, publish, tmp_path, s3_client, pem_keys):
    """Reproduction: `url --trust-key` handed out URLs for bytes nobody checked (path and URL only). Each line
    now carries the signed size and sha256; the receiver loop of the help's example downloads and checks
    them, and fails when the object behind a URL was replaced."""
    key, pub = pem_keys
    files = {"model.bin": os.urandom(20_000), "sub/config.yaml": b"a: 1\n"}
    version = publish("m", files, signer=load_signer(key))
    example = build_parser("url")._subparsers._group_actions[0].choices["url"].epilog
    loop = example.split("examples:\n")[1].split("\n\n")[0].splitlines()[1:]
    script = "\n".join(line.strip() for line in loop).replace("modelsync url", f"{sys.executable} -m modelsync url")
    script = script.replace("url ocr", "url m").replace("KEY", pub)
    env = merged_env({"MODELSYNC_BUCKET": bucket})
    receiver = tmp_path / "receiver"
    receiver.mkdir()
    ok = subprocess.run(["bash", "-c", f"set -o pipefail; {script}"], cwd=receiver, env=env, capture_output=True,
                        text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert tree(receiver) == files
    s3_client.put_object(Bucket=bucket, Key=f"models/m/{version}/files/model.bin", Body=b"replaced")
    (receiver / "model.bin").unlink()
    bad = subprocess.run(["bash", "-c", f"set -o pipefail; {script}"], cwd=receiver, env=env, capture_output=True,
                         text=True, timeout=60)
    assert bad.returncode != 0 and "FAILED" in bad.stdout + bad.stderr


def test_url_refuses_unknown_models_versions_and_bad_expiry(bucket, publish):
    publish("m", {"a": b"1"})
    unknown_model = run_cli("url", "nope", "--bucket", bucket)
    assert_one_line_error(unknown_model, "model 'nope' not found")
    assert unknown_model.returncode == 1
    unknown_version = run_cli("url", "m@v9", "--bucket", bucket)
    assert_one_line_error(unknown_version, "version 'v9' of model 'm' not found")
    assert unknown_version.returncode == 1
    for expires in ("0", "604801", "soon"):
        bad = run_cli("url", "m", "--bucket", bucket, "--expires", expires)
        assert_one_line_error(bad, f"--expires {expires} is")
        assert bad.returncode == 2
    assert run_cli("url", "m", "--bucket", bucket, "--expires", "604800").returncode == 0
