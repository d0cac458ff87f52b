"""CloudWatch metrics with no agent: one Embedded Metric Format (EMF) record per finished job.

A record is one JSON line on stderr. CloudWatch Logs (the awslogs driver of the task definitions) turns
it into metrics: `_aws` names the namespace, the dimension sets and the metrics with their units, and the
values sit at the top level beside the dimension values (CloudWatch docs, "Specification: Embedded metric
format"). Nothing is written unless MODELSYNC_METRICS_NAMESPACE is set (local runs stay quiet); the stage,
the app and the delivery mode come from MODELSYNC_STAGE, MODELSYNC_APP and MODELSYNC_DELIVERY_MODE (an app's
records carry its name, so several apps of one stage keep their pull times apart). The records: docs/runtime.md,
"Metrics". A bad namespace or dimension value costs the metrics, never the job: one warning, no record.
"""

from __future__ import annotations

import json
import re
import sys
import time

from .config import env
from .progress import mib_per_s

NAMESPACE_ENV = "MODELSYNC_METRICS_NAMESPACE"
STAGE_ENV = "MODELSYNC_STAGE"
MODE_ENV = "MODELSYNC_DELIVERY_MODE"
APP_ENV = "MODELSYNC_APP"
STAGE, APP, MODE, MODEL = "Stage", "App", "DeliveryMode", "Model"
# CloudWatch: a namespace is 1-255 ASCII characters, not starting with ':' (AWS/ is for AWS services); a
# dimension value 1-1024 characters. Printable ASCII only here, so a record can never be malformed.
NAMESPACE_RE = re.compile(r"(?!AWS/)[ -9;-~][ -~]{0,254}")
DIMENSION_VALUE_RE = re.compile(r"[ -~]{1,1024}")

DEFAULT_NAMESPACE = "ModelDelivery"  # what the model_delivery constructs set
SECONDS, BYTES, COUNT, MIB_PER_SECOND = "Seconds", "Bytes", "Count", "Megabytes/Second"
# Every metric a record can carry, with its CloudWatch unit (the constructs' alarms and dashboard name these).
UNITS = {
    "PullSeconds": SECONDS,
    "PullBytes": BYTES,
    "PullFiles": COUNT,
    "PullMiBPerSecond": MIB_PER_SECOND,
    "PullModels": COUNT,
    "PullFailures": COUNT,
    "PullRetries": COUNT,
    "VerifyModels": COUNT,
    "VerifyFailures": COUNT,
    "ViewSeconds": SECONDS,
    "SeedPublished": COUNT,
    "SeedUnchanged": COUNT,
    "SeedFailed": COUNT,
    "SeedDownloadedBytes": BYTES,
    "SeedUploadedBytes": BYTES,
    "SeedSeconds": SECONDS,
    "MirrorFailed": COUNT,
    "MirrorBytes": BYTES,
    "MirrorFiles": COUNT,
    "MirrorSeconds": SECONDS,
}


def pull_finished(result, progress, *, failed: bool) -> None:
    """`pull` (the s3-mode init container): what this task start cost. Failures and retries are the
    pull's own `error` and `retry` events (one per failed model, one per object fetched again)."""
    counts = getattr(progress, "counts", {})
    _emit(
        "pull",
        [STAGE, APP, MODE],
        {
            "PullSeconds": round(result.seconds, 3),
            "PullBytes": result.downloaded_bytes,
            "PullFiles": result.downloaded_files,
            "PullMiBPerSecond": mib_per_s(result.downloaded_bytes, result.seconds),
            "PullModels": len(result.models),
            "PullFailures": counts.get("error", 0),
            "PullRetries": counts.get("retry", 0),
        },
        failed=failed,
        models=[f"{m.name}@{m.version}" for m in result.models],
    )


def verify_finished(states) -> None:
    """`verify` (the efs-mode init container): models checked, and how many of them have problems."""
    _emit(
        "verify",
        [STAGE, APP, MODE],
        {
            "VerifyModels": sum(1 for s in states if s.version),
            "VerifyFailures": sum(1 for s in states if s.problems),
        },
        models=[f"{s.name}@{s.version}" for s in states if s.version],
    )


def view_finished(result) -> None:
    """A view built or refreshed (`view`, or `pull` / `verify --view`)."""
    _emit(
        "view",
        [STAGE, APP, MODE],
        {"ViewSeconds": round(result.seconds, 3)},
        layout=result.layout,
        changed=result.changed,
        models=result.models,
    )


def seed_finished(report) -> None:
    """`seed`: one record per model (its result, bytes and seconds; by model and summed per stage), then
    one for the EFS mirror step when there was one."""
    for m in report.models:
        _emit(
            "seed",
            [STAGE, MODEL],
            {
                "SeedPublished": int(m.status == "published"),
                "SeedUnchanged": int(m.status == "unchanged"),
                "SeedFailed": int(m.status == "failed"),
                "SeedDownloadedBytes": m.downloaded_bytes,
                "SeedUploadedBytes": m.uploaded_bytes,
                "SeedSeconds": round(m.seconds, 3),
            },
            also=[STAGE],
            model=m.name,
            result=m.status,
            version=m.version,
        )
    mirror_finished(report.mirror)


def mirror_finished(mirror) -> None:
    """The EFS mirror step (of `seed` with a signing key, or of `sign`), when there was one."""
    if mirror is None:
        return
    _emit(
        "mirror",
        [STAGE],
        {
            "MirrorFailed": int(not mirror.ok),
            "MirrorBytes": mirror.bytes,
            "MirrorFiles": mirror.files,
            "MirrorSeconds": round(mirror.seconds, 3),
        },
    )


def _emit(
    job: str,
    keys: list[str],
    values: dict[str, float],
    *,
    also: list[str] | None = None,
    model: str | None = None,
    **properties,
) -> None:
    """Write one EMF record, with the dimension set `keys` (and `also`) limited to the dimensions that are
    configured: a record never names a dimension it has no value for."""
    namespace = env(NAMESPACE_ENV)
    if namespace is None:
        return
    dimensions = {STAGE: env(STAGE_ENV), APP: env(APP_ENV), MODE: env(MODE_ENV), MODEL: model}
    problem = _problem(namespace, dimensions)
    if problem:
        _warn(f"{problem}: no metrics written for this {job}")
        return
    sets = []
    for wanted in (keys, *([also] if also is not None else [])):
        chosen = [key for key in wanted if dimensions[key] is not None]
        if chosen not in sets:
            sets.append(chosen)
    record = {
        "_aws": {
            "Timestamp": int(time.time() * 1000),
            "CloudWatchMetrics": [
                {
                    "Namespace": namespace,
                    "Dimensions": sets,
                    "Metrics": [{"Name": name, "Unit": UNITS[name]} for name in values],
                }
            ],
        },
        **{key: value for key, value in dimensions.items() if value is not None and any(key in s for s in sets)},
        **values,
        "event": "metrics",
        "job": job,
        **properties,
    }
    _write(json.dumps(record, sort_keys=True) + "\n")


def _problem(namespace: str, dimensions: dict) -> str | None:
    if not NAMESPACE_RE.fullmatch(namespace):
        return (
            f"{NAMESPACE_ENV}={namespace!r} is not a CloudWatch namespace (1-255 printable ASCII characters, "
            "not starting with ':' or AWS/)"
        )
    for key, value in dimensions.items():
        if value is not None and not DIMENSION_VALUE_RE.fullmatch(value):
            where = {STAGE: STAGE_ENV, APP: APP_ENV, MODE: MODE_ENV}.get(key, f"the {key} dimension")
            return f"{where}={value!r} is not a CloudWatch dimension value (1-1024 printable ASCII characters)"
    return None


def _warn(message: str) -> None:
    _write(f"modelsync: warning: {message}\n")


def _write(text: str) -> None:
    try:
        sys.stderr.write(text)
        sys.stderr.flush()
    except (OSError, ValueError):
        pass  # a closed stderr must never fail a job that has finished
