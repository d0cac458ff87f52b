"""What the bucket holds: models, their versions, sizes, creation times and LATEST (for list/prune)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import JobFailed
from .manifest import created_order, model_prefix, read_latest_version, read_manifest
from .s3 import list_subprefixes


@dataclass
class VersionInfo:
    version: str
    created: str | None  # None: no valid manifest (incomplete, in progress or broken)
    files: int = 0
    bytes: int = 0


@dataclass
class ModelInfo:
    name: str
    latest: str | None
    versions: list[VersionInfo] = field(default_factory=list)


def list_versions(client, bucket: str, *, prefix: str) -> list[ModelInfo]:
    models = []
    for model_dir in list_subprefixes(client, bucket, prefix):
        name = model_dir[len(prefix):].rstrip("/")
        info = ModelInfo(name, read_latest_version(client, bucket, name, prefix=prefix))
        for version_dir in list_subprefixes(client, bucket, model_prefix(prefix, name)):
            version = version_dir[len(model_prefix(prefix, name)):].rstrip("/")
            try:
                manifest = read_manifest(client, bucket, name, version, prefix=prefix)
            except JobFailed:  # unreadable manifest: shown and kept like an incomplete version
                manifest = None
            if manifest is None:
                info.versions.append(VersionInfo(version, None))
            else:
                info.versions.append(VersionInfo(version, manifest.created, len(manifest.files), manifest.total_bytes))
        info.versions.sort(key=lambda v: created_order(v.created), reverse=True)
        models.append(info)
    return models
