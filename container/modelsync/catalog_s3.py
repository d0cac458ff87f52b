"""What the bucket holds: models, their versions, sizes, creation times and LATEST (for list/prune)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import JobFailed
from .manifest import created_order, list_model_names, list_version_ids, read_latest_version, read_manifest


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


def list_versions(client, bucket: str, *, prefix: str, warn=None) -> list[ModelInfo]:
    """Every model and version under prefix; keys that cannot be either are skipped with warn()."""
    models = []
    for name in list_model_names(client, bucket, prefix, warn=warn):
        info = ModelInfo(name, read_latest_version(client, bucket, name, prefix=prefix))
        for version in list_version_ids(client, bucket, prefix, name, warn=warn):
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
