"""Versioned, content-derived manifests and the bucket layout (docs/contracts.md)."""

from __future__ import annotations

import hashlib
import json
import posixpath
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone

from .config import DEFAULT_PREFIX, check_name, check_version
from .errors import JobFailed, ModelsyncError
from .s3 import get_small_object

VERSION_HEX_CHARS = 16  # 64 bits of the content hash: collisions are not a practical concern


@dataclass(frozen=True)
class FileEntry:
    path: str
    size: int
    sha256: str


@dataclass
class Manifest:
    name: str
    version: str
    created: str
    source: dict = field(default_factory=dict)
    files: list[FileEntry] = field(default_factory=list)

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    def to_json(self) -> str:
        data = asdict(self)
        return json.dumps(data, indent=1, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes, *, where: str) -> "Manifest":
        """Parse and validate; refuses paths that would escape the model directory."""
        try:
            data = json.loads(text)
            name = check_name(data["name"])
            version = check_version(data["version"], name=name)
            files = [FileEntry(str(f["path"]), int(f["size"]), str(f["sha256"]).lower()) for f in data["files"]]
            manifest = cls(name, version, str(data.get("created", "")), dict(data.get("source") or {}), files)
        except ModelsyncError as exc:
            raise JobFailed(f"manifest {where} is invalid: {exc}") from None
        except (ValueError, KeyError, TypeError) as exc:
            raise JobFailed(f"manifest {where} is not a valid modelsync manifest ({exc}): republish the model") from None
        seen = set()
        for entry in manifest.files:
            check_relative_path(entry.path, where=where)
            if entry.path in seen:
                raise JobFailed(f"manifest {where} lists {entry.path!r} twice: republish the model")
            seen.add(entry.path)
            if entry.size < 0 or len(entry.sha256) != 64 or not all(c in "0123456789abcdef" for c in entry.sha256):
                raise JobFailed(f"manifest {where} has a bad size or sha256 for {entry.path!r}: republish the model")
        return manifest


def now_created() -> str:
    """The manifest's creation time, UTC, to the microsecond: versions published within one second
    must still sort in the order they were published (prune keeps the newest)."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def created_order(created: str | None) -> datetime:
    """Sort key for `created`, whole-second (older manifests) and microsecond stamps alike."""
    try:
        return datetime.fromisoformat(created) if created else datetime.min.replace(tzinfo=timezone.utc)
    except ValueError:  # an unreadable stamp sorts as oldest, so prune never prefers it
        return datetime.min.replace(tzinfo=timezone.utc)


def path_problem(path: str) -> str | None:
    """Why path cannot be a file of a model (None when it can): one rule for publish and pull."""
    try:
        path.encode("utf-8")  # S3 keys and manifests are UTF-8; a non-UTF-8 file name has no key
    except UnicodeEncodeError:
        return "is not valid UTF-8"
    if not path or path.startswith("/"):
        return "is empty or absolute"
    if "\\" in path:
        return "contains a backslash"
    if any(ord(c) < 32 or ord(c) == 127 for c in path):
        return "contains a control character"  # S3 advises against them in keys; they break logs too
    if any(part in ("", ".", "..") for part in path.split("/")) or posixpath.normpath(path) != path:
        return "has empty, '.' or '..' components"
    return None


def check_relative_path(path: str, *, where: str) -> str:
    """Refuse anything that is not a plain relative path inside the model directory."""
    if path_problem(path):
        raise JobFailed(f"manifest {where} has an unsafe path {path!r} (it would escape the model directory): refused")
    return path


def content_version(files: list[FileEntry]) -> str:
    """Version id from the sorted (path, size, sha256) list: same content, same version."""
    digest = hashlib.sha256()
    for entry in sorted(files, key=lambda f: f.path):
        digest.update(f"{entry.path}\0{entry.size}\0{entry.sha256}\n".encode())
    return digest.hexdigest()[:VERSION_HEX_CHARS]


# Bucket layout ------------------------------------------------------------------------------

def model_prefix(prefix: str, name: str) -> str:
    return f"{prefix}{name}/"


def latest_key(prefix: str, name: str) -> str:
    return f"{prefix}{name}/LATEST"


def version_prefix(prefix: str, name: str, version: str) -> str:
    return f"{prefix}{name}/{version}/"


def manifest_key(prefix: str, name: str, version: str) -> str:
    return f"{prefix}{name}/{version}/manifest.json"


def file_key(prefix: str, name: str, version: str, path: str) -> str:
    return f"{prefix}{name}/{version}/files/{path}"


# Reading ------------------------------------------------------------------------------------

def read_latest_version(client, bucket: str, name: str, *, prefix: str = DEFAULT_PREFIX) -> str | None:
    key = latest_key(prefix, name)
    body = get_small_object(client, bucket, key)
    if body is None:
        return None
    try:
        version = json.loads(body)["version"]
    except (ValueError, KeyError, TypeError):
        raise JobFailed(f"s3://{bucket}/{key} is not valid JSON with a 'version': republish the model") from None
    try:
        return check_version(str(version), name=name)
    except ModelsyncError as exc:
        raise JobFailed(f"s3://{bucket}/{key}: {exc}") from None


def read_manifest(client, bucket: str, name: str, version: str, *, prefix: str = DEFAULT_PREFIX) -> Manifest | None:
    key = manifest_key(prefix, name, version)
    body = get_small_object(client, bucket, key)
    if body is None:
        return None
    manifest = Manifest.from_json(body, where=f"s3://{bucket}/{key}")
    if manifest.name != name or manifest.version != version:
        raise JobFailed(f"manifest s3://{bucket}/{key} names {manifest.name}@{manifest.version}: republish the model")
    return manifest


def read_latest(client, bucket: str, name: str, *, prefix: str = DEFAULT_PREFIX) -> Manifest | None:
    """The latest manifest of a model, or None when the model has never been published."""
    version = read_latest_version(client, bucket, name, prefix=prefix)
    if version is None:
        return None
    manifest = read_manifest(client, bucket, name, version, prefix=prefix)
    if manifest is None:
        raise JobFailed(
            f"s3://{bucket}/{latest_key(prefix, name)} points to version {version} which has no manifest: republish the model"
        )
    return manifest
