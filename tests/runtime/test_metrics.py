"""CloudWatch EMF records of real `pull`, `verify` and `view` runs: `python -m modelsync` in subprocesses against
the moto server (through the fault proxy where a retry or a failure is needed). Each record is checked
against the EMF rules (tests/emf_check.py) and its values against what the run really did."""

from __future__ import annotations

import os

from tests.emf_check import dimension_sets, namespace, records, values

from .helpers import model_files, run_cli

METRICS_ENV = {"MODELSYNC_METRICS_NAMESPACE": "ModelDelivery", "MODELSYNC_STAGE": "dev",
               "MODELSYNC_DELIVERY_MODE": "s3"}
PULL_METRICS = {"PullSeconds": "Seconds", "PullBytes": "Bytes", "PullFiles": "Count",
                "PullMiBPerSecond": "Megabytes/Second", "PullModels": "Count", "PullFailures": "Count",
                "PullRetries": "Count"}


def only(proc, job: str) -> dict:
    found = [r for r in records(proc.stderr) if r["job"] == job]
    assert len(found) == 1, proc.stderr
    return found[0]


def test_without_a_namespace_nothing_is_written(publish, bucket, tmp_path):
    publish("m", model_files())
    proc = run_cli("pull", "--bucket", bucket, "--dest", tmp_path / "d", "--progress", "json",
                   env={"MODELSYNC_METRICS_NAMESPACE": None, "MODELSYNC_STAGE": "dev"})
    assert proc.returncode == 0, proc.stderr
    assert '"_aws"' not in proc.stderr + proc.stdout


def test_a_cold_pull_writes_one_record_with_what_it_moved_and_retried(publish, bucket, proxy, proxy_env, tmp_path):
    first, second = model_files(seed=1), model_files(seed=2)
    publish("SEG_M2F_GrapheneL", first)
    publish("CLS_AMM_GrapheneL", second)
    # The first GET of each model's config.yaml breaks half-way: modelsync fetches it again (a retry event).
    proxy.fault = lambda method, path, count: "truncate" if path.endswith("/config.yaml") and count == 1 else None
    proc = run_cli("pull", "--bucket", bucket, "--dest", tmp_path / "d", "--progress", "json",
                   env={**proxy_env, **METRICS_ENV})
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count('"event": "progress"') + proc.stderr.count('"event": "done"') >= 2  # ticks: no records
    record = only(proc, "pull")
    assert namespace(record) == "ModelDelivery"
    assert dimension_sets(record) == [{"Stage": "dev", "DeliveryMode": "s3"}]
    got = values(record)
    assert {name: unit for name, (_, unit) in got.items()} == PULL_METRICS
    total = sum(map(len, first.values())) + sum(map(len, second.values()))
    assert got["PullBytes"][0] == total and got["PullFiles"][0] == 8 and got["PullModels"][0] == 2
    assert got["PullFailures"][0] == 0 and got["PullRetries"][0] == 2
    assert got["PullSeconds"][0] > 0
    rate = total / 1024 / 1024 / got["PullSeconds"][0]  # PullSeconds is rounded to ms: allow for that
    assert abs(got["PullMiBPerSecond"][0] - rate) <= 0.05 + 0.01 * rate
    assert record["failed"] is False and sorted(m.split("@")[0] for m in record["models"]) == [
        "CLS_AMM_GrapheneL", "SEG_M2F_GrapheneL"]

    warm = run_cli("pull", "--bucket", bucket, "--dest", tmp_path / "d", env={**proxy_env, **METRICS_ENV})
    warm_values = values(only(warm, "pull"))
    assert (warm_values["PullBytes"][0], warm_values["PullFiles"][0], warm_values["PullModels"][0]) == (0, 0, 2)


def test_a_failed_pull_still_writes_its_record_with_the_failure(publish, bucket, proxy, proxy_env, tmp_path):
    publish("good", {"w.bin": b"g" * 2000})
    publish("bad", {"config.yaml": b"bad\n"})
    proxy.fault = lambda method, path, count: "corrupt" if "/bad/" in path and "/files/" in path else None
    proc = run_cli("pull", "--bucket", bucket, "--dest", tmp_path / "d", env={**proxy_env, **METRICS_ENV})
    assert proc.returncode == 1
    record = only(proc, "pull")
    got = values(record)
    # The bad object was fetched twice (one sha256 retry), then the model failed; the good one was pulled.
    assert (got["PullFailures"][0], got["PullRetries"][0], got["PullModels"][0]) == (1, 1, 1)
    assert got["PullBytes"][0] == 2000 and record["failed"] is True


def test_pull_with_a_view_writes_a_pull_and_a_view_record(publish, bucket, tmp_path):
    publish("SEG_M2F_GrapheneL", model_files())
    proc = run_cli("pull", "--bucket", bucket, "--dest", tmp_path / "d", "--view", tmp_path / "view",
                   "--layout", "maskterial", env=METRICS_ENV)
    assert proc.returncode == 0, proc.stderr
    assert [r["job"] for r in records(proc.stderr)] == ["pull", "view"]
    view = only(proc, "view")
    assert dimension_sets(view) == [{"Stage": "dev", "DeliveryMode": "s3"}]
    assert values(view)["ViewSeconds"][1] == "Seconds" and values(view)["ViewSeconds"][0] >= 0
    assert view["layout"] == "maskterial" and view["changed"] is True


def test_verify_counts_the_models_with_problems(client, publish, bucket, tmp_path):
    publish("a", model_files(seed=1))
    publish("b", model_files(seed=2))
    dest = tmp_path / "d"
    assert run_cli("pull", "--bucket", bucket, "--dest", dest).returncode == 0
    efs = {**METRICS_ENV, "MODELSYNC_DELIVERY_MODE": "efs"}

    good = run_cli("verify", "--dest", dest, env=efs)
    assert good.returncode == 0, good.stderr
    record = only(good, "verify")
    assert dimension_sets(record) == [{"Stage": "dev", "DeliveryMode": "efs"}]
    assert values(record) == {"VerifyModels": (2, "Count"), "VerifyFailures": (0, "Count")}

    os.unlink(dest / "b" / "config.yaml")
    bad = run_cli("verify", "--dest", dest, env=efs)
    assert bad.returncode == 1
    assert values(only(bad, "verify")) == {"VerifyModels": (2, "Count"), "VerifyFailures": (1, "Count")}

    never_seeded = run_cli("verify", "--dest", tmp_path / "empty-mirror", env=efs)
    assert never_seeded.returncode == 1
    assert values(only(never_seeded, "verify")) == {"VerifyModels": (0, "Count"), "VerifyFailures": (1, "Count")}


def test_without_stage_and_mode_the_record_has_no_dimensions(publish, bucket, tmp_path):
    publish("m", model_files())
    proc = run_cli("pull", "--bucket", bucket, "--dest", tmp_path / "d",
                   env={"MODELSYNC_METRICS_NAMESPACE": "Team/Models", "MODELSYNC_STAGE": None,
                        "MODELSYNC_DELIVERY_MODE": None})
    record = only(proc, "pull")
    assert record["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [[]]
    assert dimension_sets(record) == [{}] and namespace(record) == "Team/Models"


def test_a_bad_namespace_costs_the_metrics_not_the_pull(publish, bucket, tmp_path):
    publish("m", model_files())
    for bad, fragment in ((":Models", "is not a CloudWatch namespace"), ("AWS/ECS", "not starting with ':' or AWS/"),
                          ("x" * 256, "1-255 printable ASCII")):
        proc = run_cli("pull", "--bucket", bucket, "--dest", tmp_path / "d",
                       env={**METRICS_ENV, "MODELSYNC_METRICS_NAMESPACE": bad})
        assert proc.returncode == 0, proc.stderr
        assert not records(proc.stderr)
        [warning] = [line for line in proc.stderr.splitlines() if line.startswith("modelsync: warning:")]
        assert fragment in warning and warning.endswith("no metrics written for this pull")
    proc = run_cli("pull", "--bucket", bucket, "--dest", tmp_path / "d", env={**METRICS_ENV, "MODELSYNC_STAGE": "dév"})
    assert proc.returncode == 0 and not records(proc.stderr)
    assert "MODELSYNC_STAGE='dév' is not a CloudWatch dimension value" in proc.stderr


def test_an_apps_records_carry_its_name_so_two_apps_of_a_stage_stay_apart(publish, bucket, tmp_path):
    publish("SEG_M2F_GrapheneL", model_files())
    for app in ("maskterial", "ocr"):
        proc = run_cli("pull", "--bucket", bucket, "--dest", tmp_path / app, "--view", tmp_path / f"{app}-view",
                       env={**METRICS_ENV, "MODELSYNC_APP": app})
        assert proc.returncode == 0, proc.stderr
        for job in ("pull", "view"):
            record = only(proc, job)
            assert dimension_sets(record) == [{"Stage": "dev", "App": app, "DeliveryMode": "s3"}]


def test_a_bad_app_name_costs_the_metrics_never_the_pull(publish, bucket, tmp_path):
    publish("m", model_files())
    proc = run_cli("pull", "--bucket", bucket, "--dest", tmp_path / "d", env={**METRICS_ENV, "MODELSYNC_APP": "café"})
    assert proc.returncode == 0, proc.stderr
    assert "MODELSYNC_APP='café' is not a CloudWatch dimension value" in proc.stderr
    assert not records(proc.stderr)
