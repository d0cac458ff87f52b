"""What the bucket has published: models, their versions, sizes, creation times and LATEST (list, prune)."""

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
    signature: str | None = None  # with a trust key: "valid", "missing" or "invalid"; None: not checked


@dataclass
class ModelInfo:
    name: str
    latest: str | None
    versions: list[VersionInfo] = field(default_factory=list)


def list_versions(client, bucket: str, *, prefix: str, warn=None, trust=None) -> list[ModelInfo]:
    """Every model and version under prefix; keys that cannot be either are skipped with warn().
    trust (a signing.Verifier): also check each manifest's signature (one small GET per version)."""
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
                info.versions.append(
                    VersionInfo(
                        version,
                        manifest.created,
                        len(manifest.files),
                        manifest.total_bytes,
                        _signature_state(client, bucket, prefix, manifest, trust),
                    )
                )
        info.versions.sort(key=lambda v: created_order(v.created), reverse=True)
        models.append(info)
    return models


def _signature_state(client, bucket, prefix, manifest, trust) -> str | None:
    if trust is None:
        return None
    from .objects import S3Objects
    from .signing import envelope_problem, manifest_digest, read_envelope

    envelope = read_envelope(S3Objects(client, bucket, prefix), manifest.name, manifest.version)
    if envelope is None:
        return "missing"
    problem = envelope_problem(trust, envelope, "manifest", manifest.name, manifest.version, manifest_digest(manifest))
    return "valid" if problem is None else "invalid"
