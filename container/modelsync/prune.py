"""`prune`: keep the last N versions per model in the bucket; drop non-current local versions."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import botocore.exceptions as bx

from .manifest import created_order, version_prefix
from .published import list_versions
from .s3 import list_keys, translate_client_error
from .store import LocalStore


@dataclass
class PruneReport:
    removed: list[str] = field(default_factory=list)  # "name@version"
    kept: list[str] = field(default_factory=list)
    in_use: list[str] = field(default_factory=list)  # local: pinned by a live pull, also kept


def prune_bucket(client, bucket: str, *, prefix: str, keep: int, dry_run: bool = False) -> PruneReport:
    """Per model: keep the `keep` newest complete versions and always the LATEST one.
    Versions without a manifest may be a publish in progress and are left alone."""
    report = PruneReport()
    for model in list_versions(client, bucket, prefix=prefix):
        complete = [v for v in model.versions if v.created is not None]
        complete.sort(key=lambda v: created_order(v.created), reverse=True)
        keep_ids = {v.version for v in complete[:keep]} | ({model.latest} if model.latest else set())
        for info in complete:
            label = f"{model.name}@{info.version}"
            if info.version in keep_ids:
                report.kept.append(label)
                continue
            report.removed.append(label)
            if not dry_run:
                _delete_prefix(client, bucket, version_prefix(prefix, model.name, info.version))
    return report


def _delete_prefix(client, bucket: str, key_prefix: str) -> None:
    """The manifest alone first (DeleteObjects has no order within a batch), so a version that is
    half deleted is never mistaken for a complete one; the first error stops everything."""
    keys = [o["Key"] for o in list_keys(client, bucket, key_prefix)]
    manifests = [k for k in keys if k == key_prefix + "manifest.json"]
    rest = [k for k in keys if k not in manifests]
    try:
        for key in manifests:
            client.delete_object(Bucket=bucket, Key=key)
        for start in range(0, len(rest), 1000):
            batch = [{"Key": k} for k in rest[start : start + 1000]]
            response = client.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
            if response.get("Errors"):
                error = response["Errors"][0]
                raise bx.ClientError(
                    {"Error": {"Code": error.get("Code"), "Message": error.get("Message")}}, "DeleteObjects"
                )
    except (bx.ClientError, bx.BotoCoreError) as exc:
        raise translate_client_error(exc, bucket=bucket, key=key_prefix) from None


def prune_local(dest, *, dry_run: bool = False) -> PruneReport:
    """Remove every version directory and record that no <dest>/<name> link points to, except
    versions a live pull has pinned (being built, or about to be switched to). Safe without the
    lock (flock can silently succeed for everyone on some NFS mounts): pins and the link are read
    again right before each removal. Removal goes through directory descriptors and never follows a
    link out of the store; a link where a model or version belongs is refused before any removal."""
    store = LocalStore(dest)
    report = PruneReport()
    if not os.path.isdir(store.meta):
        return report
    names = store.model_dirs()
    for name in names:
        store.version_dirs(name)
    if not dry_run:
        store.ensure()
    for name in names:
        with store.lock(name):
            for version in sorted(set(store.version_dirs(name)) | set(store.recorded_versions(name))):
                label = f"{name}@{version}"
                if version == store.current_version(name):
                    report.kept.append(label)
                elif version in store.pinned_versions(name):
                    report.kept.append(label)
                    report.in_use.append(label)
                else:
                    report.removed.append(label)
                    if not dry_run:
                        store.remove_version(name, version)
    if not dry_run:
        store.clean_stale_temps()
    return report
