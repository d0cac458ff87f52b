"""CloudWatch EMF records of real `modelsync seed` runs (subprocesses against the moto server and the local
Zenodo): one record per model with its result, bytes and seconds, by model and summed per stage, and one for
the EFS mirror step; a seed stopped by SIGTERM still writes them with its summary."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from tests.emf_check import dimension_sets, records, values
from tests.seed.test_seed_flow import FAMILIES, RECORD, zenodo_entry
from tools.fake_zenodo import model_zip

METRICS_ENV = {"MODELSYNC_METRICS_NAMESPACE": "ModelDelivery", "MODELSYNC_STAGE": "prod"}
SEED_UNITS = {"SeedPublished": "Count", "SeedUnchanged": "Count", "SeedFailed": "Count",
              "SeedDownloadedBytes": "Bytes", "SeedUploadedBytes": "Bytes", "SeedSeconds": "Seconds"}


@pytest.fixture
def seed_env(s3_endpoint, bucket, zenodo, tmp_path, seed_keys):
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(FAMILIES + zenodo_entry("CLS_GMM_WS2", "gmm") + zenodo_entry("CLS_GMM_WSe2", "gmm"))
    return {**os.environ, **METRICS_ENV, "MODELSYNC_CATALOG": str(catalog), "MODELSYNC_BUCKET": bucket,
            "MODELSYNC_SIGNING_KEY": seed_keys[0],
            "ZENODO_URL": zenodo.url, "MODELSYNC_EFS_ROOT": str(tmp_path / "efs"), "TMPDIR": str(tmp_path)}


def seed(env, **extra) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "modelsync", "seed", "--progress", "quiet"],
                          env={**env, **extra}, capture_output=True, text=True, timeout=120)


def by_model(proc) -> dict[str, dict]:
    return {r["Model"]: r for r in records(proc.stderr) if r["job"] == "seed"}


def test_each_model_and_the_mirror_get_one_record(zenodo, seed_env):
    archive = model_zip("gmm", "CLS_GMM_WS2")
    zenodo.add(RECORD, "CLS_GMM_WS2.zip", archive)
    zenodo.add(RECORD, "CLS_GMM_WSe2.zip", model_zip("gmm", "CLS_GMM_WSe2"))
    zenodo.wrong_md5.add("CLS_GMM_WSe2.zip")

    first = seed(seed_env)
    assert first.returncode == 1, first.stderr
    assert [r["job"] for r in records(first.stderr)] == ["seed", "seed", "mirror"]
    models = by_model(first)
    published, failed = models["CLS_GMM_WS2"], models["CLS_GMM_WSe2"]
    for record in (published, failed):
        # By model, and (the same datapoint) summed over the stage's models.
        assert dimension_sets(record) == [{"Stage": "prod", "Model": record["Model"]}, {"Stage": "prod"}]
        assert {name: unit for name, (_, unit) in values(record).items()} == SEED_UNITS
    got = values(published)
    assert (got["SeedPublished"][0], got["SeedUnchanged"][0], got["SeedFailed"][0]) == (1, 0, 0)
    assert got["SeedDownloadedBytes"][0] == len(archive) and got["SeedUploadedBytes"][0] > 0
    assert published["result"] == "published" and published["version"]
    bad = values(failed)
    assert (bad["SeedPublished"][0], bad["SeedFailed"][0], bad["SeedUploadedBytes"][0]) == (0, 1, 0)
    [mirror] = [r for r in records(first.stderr) if r["job"] == "mirror"]
    assert dimension_sets(mirror) == [{"Stage": "prod"}]
    mirrored = values(mirror)
    assert mirrored["MirrorFailed"] == (0, "Count") and mirrored["MirrorFiles"][0] >= 1
    assert mirrored["MirrorBytes"][0] > 0 and mirrored["MirrorSeconds"][1] == "Seconds"

    again = seed(seed_env, MODELSYNC_SEED_ONLY="CLS_GMM_WS2")
    assert again.returncode == 0, again.stderr
    unchanged = values(by_model(again)["CLS_GMM_WS2"])
    assert (unchanged["SeedUnchanged"][0], unchanged["SeedDownloadedBytes"][0], unchanged["SeedUploadedBytes"][0]) \
        == (1, 0, 0)


def test_a_seed_stopped_by_sigterm_writes_its_records_before_it_exits(zenodo, seed_env):
    zenodo.add(RECORD, "CLS_GMM_WS2.zip", model_zip("gmm", "CLS_GMM_WS2"))
    zenodo.add(RECORD, "CLS_GMM_WSe2.zip", model_zip("gmm", "CLS_GMM_WSe2"))
    zenodo.fail(r"CLS_GMM_WSe2\.zip", 429, times=10, Retry_After="60")  # the seeder waits a minute
    proc = subprocess.Popen([sys.executable, "-m", "modelsync", "seed", "--progress", "quiet"], env=seed_env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = []
    for line in proc.stderr:  # until it waits on the 429 of the second archive
        seen.append(line)
        if "retry 1 of" in line:
            break
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=15)
    assert proc.returncode == 143, err
    models = {r["Model"]: r["result"] for r in records("".join(seen) + err) if r["job"] == "seed"}
    assert models == {"CLS_GMM_WS2": "published", "CLS_GMM_WSe2": "failed"}


def test_without_a_namespace_the_seed_writes_no_record(zenodo, seed_env):
    zenodo.add(RECORD, "CLS_GMM_WS2.zip", model_zip("gmm", "CLS_GMM_WS2"))
    proc = seed({k: v for k, v in seed_env.items() if k != "MODELSYNC_METRICS_NAMESPACE"},
                MODELSYNC_SEED_ONLY="CLS_GMM_WS2")
    assert proc.returncode == 0, proc.stderr
    assert "seed: 1 published" in proc.stdout and not records(proc.stderr)
