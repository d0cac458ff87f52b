"""`modelsync seed` through the real CLI: configuration errors are one line and exit 2, a run with
a failed model prints the table and exits 1, a clean re-run exits 0."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys

import pytest

from modelsync.cli import main
from tools.fake_zenodo import model_zip
from tests.seed.test_seed_flow import FAMILIES, RECORD, zenodo_entry


@pytest.fixture
def catalog_file(tmp_path):
    path = tmp_path / "catalog.yaml"
    path.write_text(FAMILIES + zenodo_entry("CLS_GMM_WS2", "gmm") + zenodo_entry("CLS_GMM_WSe2", "gmm"))
    return path


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith("modelsync: error: "), err
    return err


def test_bad_catalog_is_exit_2_with_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(FAMILIES + "  - name: A\n    enabled: maybe\n")
    assert main(["seed", "--catalog", str(bad), "--bucket", "b"]) == 2
    assert "models[0] (A): missing approx_size_mb, source; add the key(s)" in one_error_line(capsys)


def test_unknown_only_name_is_exit_2(catalog_file, capsys):
    assert main(["seed", "--catalog", str(catalog_file), "--bucket", "b", "--only", "CLS_GMM_WS2,NOPE"]) == 2
    assert "not in the catalog" in one_error_line(capsys)


def test_no_bucket_is_exit_2(catalog_file, capsys, monkeypatch):
    monkeypatch.delenv("MODELSYNC_BUCKET", raising=False)
    assert main(["seed", "--catalog", str(catalog_file)]) == 2
    assert "no bucket given: pass --bucket NAME or set MODELSYNC_BUCKET" in one_error_line(capsys)


def test_missing_bucket_stops_before_any_download(s3_endpoint, zenodo, catalog_file, capsys):
    zenodo.add(RECORD, "CLS_GMM_WS2.zip", model_zip("gmm", "CLS_GMM_WS2"))
    code = main(["seed", "--catalog", str(catalog_file), "--bucket", "no-such-bucket-here", "--zenodo-url", zenodo.url])
    assert code == 2
    assert "bucket 'no-such-bucket-here' does not exist" in one_error_line(capsys)
    assert zenodo.log == []


def test_missing_workdir_is_exit_2(catalog_file, tmp_path, capsys):
    code = main(["seed", "--catalog", str(catalog_file), "--bucket", "b", "--workdir", str(tmp_path / "nope")])
    assert code == 2
    assert "is not a directory: create it or leave the option out" in one_error_line(capsys)


def test_list_shows_the_selection(catalog_file, capsys):
    assert main(["seed", "--catalog", str(catalog_file), "--only", "CLS_GMM_WSe2", "--list"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].split()[:3] == ["CLS_GMM_WS2", "yes", "no"] and out[2].split()[:3] == ["CLS_GMM_WSe2", "yes", "yes"]
    assert out[-1].startswith("1 selected, about 1 MB (estimates)")


def test_cli_run_from_the_environment_exit_1_on_a_failed_model_then_0(s3_endpoint, bucket, zenodo, catalog_file,
                                                                        tmp_path, monkeypatch, seed_keys):
    zenodo.add(RECORD, "CLS_GMM_WS2.zip", model_zip("gmm", "CLS_GMM_WS2"))
    zenodo.add(RECORD, "CLS_GMM_WSe2.zip", model_zip("gmm", "CLS_GMM_WSe2"))
    zenodo.wrong_md5.add("CLS_GMM_WSe2.zip")
    efs = tmp_path / "efs"
    env = {**os.environ, "MODELSYNC_CATALOG": str(catalog_file), "MODELSYNC_BUCKET": bucket, "ZENODO_URL": zenodo.url,
           "MODELSYNC_EFS_ROOT": str(efs), "MODELSYNC_SIGNING_KEY": seed_keys[0]}
    command = [sys.executable, "-m", "modelsync", "seed", "--progress", "quiet"]

    first = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)

    assert first.returncode == 1, first.stderr
    rows = {line.split()[0]: line.split()[1] for line in first.stdout.splitlines()[1:3]}
    assert rows == {"CLS_GMM_WS2": "published", "CLS_GMM_WSe2": "failed"}
    assert "seed: 1 published, 0 unchanged, 1 failed" in first.stdout
    assert "FAILED CLS_GMM_WSe2: Zenodo 15765516/CLS_GMM_WSe2.zip: md5 mismatch" in first.stdout
    # The digest a team copies into the catalog to pin the archive (docs/seeding.md).
    digest = hashlib.sha256(model_zip("gmm", "CLS_GMM_WS2")).hexdigest()
    assert ["CLS_GMM_WS2", digest, "no"] in [line.split() for line in first.stdout.splitlines()]
    assert "Traceback" not in first.stderr
    assert (efs / "CLS_GMM_WS2" / "contrast_dict.json").is_file()

    again = subprocess.run(command, env={**env, "MODELSYNC_SEED_ONLY": "CLS_GMM_WS2"}, capture_output=True,
                           text=True, timeout=120)

    assert again.returncode == 0, again.stderr
    assert "seed: 0 published, 1 unchanged, 0 failed" in again.stdout
    assert "EFS mirror " + str(efs) + ": ok, 0 files (0 B) copied, 1 already in place" in again.stdout


def test_no_credentials_is_exit_2_before_any_download(s3_endpoint, zenodo, catalog_file, capsys, monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                 "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_WEB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    code = main(["seed", "--catalog", str(catalog_file), "--bucket", "b", "--zenodo-url", zenodo.url])
    assert code == 2
    assert "no AWS credentials found" in one_error_line(capsys)
    assert zenodo.log == []


def test_sigterm_stops_the_seed_between_safe_points_with_a_summary(s3_endpoint, bucket, zenodo, catalog_file,
                                                                  tmp_path, s3_client, seed_keys):
    """The seeding task is stopped with SIGTERM (ECS, or an operator): it used to run on until SIGKILL."""
    zenodo.add(RECORD, "CLS_GMM_WS2.zip", model_zip("gmm", "CLS_GMM_WS2"))
    zenodo.add(RECORD, "CLS_GMM_WSe2.zip", model_zip("gmm", "CLS_GMM_WSe2"))
    zenodo.fail(r"CLS_GMM_WSe2\.zip", 429, times=10, Retry_After="60")  # the seeder waits a minute
    env = {**os.environ, "MODELSYNC_CATALOG": str(catalog_file), "MODELSYNC_BUCKET": bucket, "ZENODO_URL": zenodo.url,
           "MODELSYNC_EFS_ROOT": str(tmp_path / "efs"), "TMPDIR": str(tmp_path), "MODELSYNC_SIGNING_KEY": seed_keys[0]}
    proc = subprocess.Popen([sys.executable, "-m", "modelsync", "seed", "--progress", "quiet"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in proc.stderr:  # until it waits on the 429 of the second archive
        if "retry 1 of" in line:
            break
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=15)

    assert proc.returncode == 143, err
    assert "modelsync: seed stopped by SIGTERM before it finished: run it again to finish" in err
    assert "Traceback" not in err
    assert "FAILED CLS_GMM_WSe2: stopped by SIGTERM while seeding it: re-run the seed" in out
    assert "seed: 1 published, 0 unchanged, 1 failed" in out
    latest = {o["Key"] for o in s3_client.list_objects_v2(Bucket=bucket).get("Contents", []) if o["Key"].endswith("LATEST")}
    assert latest == {"models/CLS_GMM_WS2/LATEST"}  # the first is published, nothing of the second
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("modelsync-seed-")] == []  # scratch removed


@pytest.mark.parametrize("pins, efs, message", [
    ("CLS_GMM_WS2", "/mnt/models", "entry 'CLS_GMM_WS2' has no version: give NAME@VERSION"),
    ("CLS_GMM_WS2@0123456789abcdef", None, "MODELSYNC_MIRROR_PINS needs --efs-root / MODELSYNC_EFS_ROOT"),
])
def test_mirror_pins_are_checked_before_anything_runs(catalog_file, capsys, pins, efs, message):
    argv = ["seed", "--catalog", str(catalog_file), "--bucket", "b", "--mirror-pins", pins]
    assert main(argv + (["--efs-root", efs] if efs else [])) == 2
    assert message in one_error_line(capsys)


def test_seed_takes_the_broken_download_bound_of_pull(catalog_file, capsys):
    """The mirror step pulls like `pull`: the same --download-attempts / MODELSYNC_DOWNLOAD_ATTEMPTS,
    checked before anything runs."""
    argv = ["seed", "--catalog", str(catalog_file), "--bucket", "b", "--efs-root", "/mnt/models"]
    assert main(argv + ["--download-attempts", "0"]) == 2
    assert "--download-attempts 0 is too small" in one_error_line(capsys)
    with pytest.raises(SystemExit):
        main(["seed", "--help"])
    assert "(env MODELSYNC_DOWNLOAD_ATTEMPTS; default 5)" in " ".join(capsys.readouterr().out.split())
