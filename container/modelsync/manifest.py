"""Versioned, content-derived manifests and the bucket layout (docs/contracts.md)."""

from __future__ import annotations

import hashlib
import json
import posixpath
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from .config import DEFAULT_PREFIX, check_name, check_version
from .errors import JobFailed, ModelsyncError
from .objects import Objects, S3Objects
from .s3 import list_subprefixes

VERSION_HEX_CHARS = 16  # 64 bits of the content hash: collisions are not a practical concern
# Bounds on what is read from the bucket: anything larger was not written by modelsync.
MAX_LATEST_BYTES = 4096  # {"version": "<16 hex>"} is about 30 bytes
MAX_MANIFEST_BYTES = 64 * 1024 * 1024  # ~400,000 files at ~150 bytes per entry
MAX_MANIFEST_FILES = 200_000  # far beyond any model; also refused by publish
MAX_FILE_SIZE = 2**63 - 1  # S3's limit is 5 TiB; this is what a 64-bit st_size can hold
_HEX = frozenset("0123456789abcdef")


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
    def from_json(cls, text: str | bytes, *, where: str) -> Manifest:
        """Parse and validate every field's type and range; refuses paths that would escape the
        model directory. Every problem is one JobFailed line naming `where`."""

        def bad(problem: str) -> JobFailed:
            return JobFailed(f"manifest {where} is not a valid modelsync manifest: {problem}; republish the model")

        try:
            data = json.loads(text)
        except (ValueError, RecursionError):  # RecursionError: nesting deeper than the parser's limit
            raise bad("not valid JSON") from None
        if not isinstance(data, dict):
            raise bad("not a JSON object")
        for key, kind in (("name", str), ("version", str), ("created", str), ("source", dict), ("files", list)):
            if key in ("name", "version", "files") and key not in data:
                raise bad(f"no {key!r}")
            if key in data and not isinstance(data[key], kind):
                raise bad(f"{key!r} must be {'a string' if kind is str else 'an object' if kind is dict else 'a list'}")
        try:
            name = check_name(data["name"])
            version = check_version(data["version"], name=name)
        except ModelsyncError as exc:
            raise JobFailed(f"manifest {where} is invalid: {exc}") from None
        if len(data["files"]) > MAX_MANIFEST_FILES:
            raise bad(f"lists {len(data['files'])} files, more than the limit of {MAX_MANIFEST_FILES}")
        files, seen = [], set()
        for index, raw in enumerate(data["files"]):
            entry = _file_entry(raw, f"files[{index}]", bad)
            check_relative_path(entry.path, where=where)
            if entry.path in seen:
                raise JobFailed(f"manifest {where} lists {entry.path!r} twice: republish the model")
            seen.add(entry.path)
            files.append(entry)
        return cls(name, version, data.get("created", ""), dict(data.get("source") or {}), files)


def _file_entry(raw, where: str, bad) -> FileEntry:
    if not isinstance(raw, dict):
        raise bad(f"{where} must be an object with path, size and sha256")
    path, size, sha = raw.get("path"), raw.get("size"), raw.get("sha256")
    if not isinstance(path, str):
        raise bad(f"{where}.path must be a string")
    # bool is an int in Python, 1e400 parses as a float (inf): only a true integer in range is a size.
    if type(size) is not int or not 0 <= size <= MAX_FILE_SIZE:
        raise bad(f"{where}.size must be a whole number of bytes in 0..2**63-1 (for {path[:200]!r})")
    if not isinstance(sha, str) or len(sha) != 64 or not _HEX.issuperset(sha.lower()):
        raise bad(f"{where}.sha256 must be 64 hex digits (for {path[:200]!r})")
    return FileEntry(path, size, sha.lower())


def now_created() -> str:
    """The manifest's creation time, UTC, to the microsecond: versions published within one second
    must still sort in the order they were published (prune keeps the newest)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def created_order(created: str | None) -> datetime:
    """Sort key for `created`, whole-second (older manifests) and microsecond stamps alike."""
    try:
        return datetime.fromisoformat(created) if created else datetime.min.replace(tzinfo=UTC)
    except ValueError:  # an unreadable stamp sorts as oldest, so prune never prefers it
        return datetime.min.replace(tzinfo=UTC)


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


def warn_on_stderr(message: str) -> None:
    print(f"modelsync: warning: {message}", file=sys.stderr, flush=True)


def list_model_names(client, bucket: str, prefix: str, *, warn: Callable[[str, str], None] | None = None) -> list[str]:
    """Names of the model "folders" under prefix. Keys that cannot be a model (anything a user
    could not have published: check_name) are skipped with warn(message, key): one stray object
    must not stop every model from being pulled, listed or pruned."""
    return _children(client, bucket, prefix, "model name", check_name, warn)


def list_version_ids(
    client, bucket: str, prefix: str, name: str, *, warn: Callable[[str, str], None] | None = None
) -> list[str]:
    """Version "folders" of one model, with the same rule (check_version) for what is skipped."""
    return _children(client, bucket, model_prefix(prefix, name), "version", lambda v: check_version(v, name=name), warn)


def _children(client, bucket, parent: str, what: str, check, warn) -> list[str]:
    warn = warn or (lambda message, _key: warn_on_stderr(message))
    found = []
    for key in list_subprefixes(client, bucket, parent):
        child = key[len(parent) : -1]
        try:
            found.append(check(child))
        except ModelsyncError:
            warn(f"s3://{bucket}: {key!r} is not a valid {what}: skipped", key)
    return found


def read_latest_version(client, bucket: str, name: str, *, prefix: str = DEFAULT_PREFIX) -> str | None:
    return latest_version_in(S3Objects(client, bucket, prefix), name)


def latest_version_in(objects: Objects, name: str) -> str | None:
    """The version LATEST names (None: no LATEST), from the bucket or the mounted tree (objects.py)."""
    key = latest_key(objects.prefix, name)
    body = objects.read(key, max_bytes=MAX_LATEST_BYTES, what="LATEST pointer")
    if body is None:
        return None
    try:
        version = json.loads(body)["version"]
    except (ValueError, KeyError, TypeError, RecursionError):
        version = None
    if not isinstance(version, str):
        raise JobFailed(f"{objects.where(key)} is not valid JSON with a 'version': republish the model") from None
    try:
        return check_version(version, name=name)
    except ModelsyncError as exc:
        raise JobFailed(f"{objects.where(key)}: {exc}") from None


def read_manifest(client, bucket: str, name: str, version: str, *, prefix: str = DEFAULT_PREFIX) -> Manifest | None:
    return manifest_in(S3Objects(client, bucket, prefix), name, version)


def manifest_in(objects: Objects, name: str, version: str) -> Manifest | None:
    """The manifest of name@version (None: there is none), validated, from the bucket or the mounted tree."""
    key = manifest_key(objects.prefix, name, version)
    body = objects.read(key, max_bytes=MAX_MANIFEST_BYTES, what="manifest")
    if body is None:
        return None
    manifest = Manifest.from_json(body, where=objects.where(key))
    if manifest.name != name or manifest.version != version:
        raise JobFailed(f"manifest {objects.where(key)} names {manifest.name}@{manifest.version}: republish the model")
    return manifest


def read_latest(client, bucket: str, name: str, *, prefix: str = DEFAULT_PREFIX) -> Manifest | None:
    """The latest manifest of a model, or None when the model has never been published."""
    version = read_latest_version(client, bucket, name, prefix=prefix)
    if version is None:
        return None
    manifest = read_manifest(client, bucket, name, version, prefix=prefix)
    if manifest is None:
        raise JobFailed(
            f"s3://{bucket}/{latest_key(prefix, name)} points to version {version} which has no manifest: "
            "republish the model"
        )
    return manifest
