"""`publish`: upload a local model folder as an immutable, content-addressed version.

Order: every file, then the manifest, then LATEST. A reader that follows LATEST therefore
always finds a complete version; a publish killed half-way leaves only unreferenced objects
that the next publish of the same content reuses.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import botocore.exceptions as bx
from boto3.s3.transfer import TransferConfig, create_transfer_manager
from s3transfer.subscribers import BaseSubscriber

from .config import DEFAULT_CONCURRENCY, DEFAULT_PREFIX, check_name, default_part_size
from .errors import JobFailed, ModelsyncError
from .hashing import sha256_many
from .keys import Signer
from .manifest import (
    MAX_MANIFEST_FILES,
    FileEntry,
    Manifest,
    content_version,
    file_key,
    latest_key,
    manifest_key,
    now_created,
    path_problem,
    read_latest_version,
    read_manifest,
    version_prefix,
)
from .progress import Progress, or_silent
from .s3 import is_not_found, list_keys, translate_client_error
from .signing import make_envelope, manifest_digest, published_problem, signature_key
from .store import stat_key


@dataclass
class PublishResult:
    name: str
    version: str
    uploaded_files: int
    uploaded_bytes: int
    skipped_files: int
    unchanged: bool
    resigned: bool = False  # signing rewrote an unsigned or wrongly signed manifest or LATEST


def scan_directory(directory: str) -> list[str]:
    """Relative POSIX paths of every regular file; symlinks must stay inside the folder."""
    root = os.path.realpath(directory)
    if not os.path.isdir(root):
        raise ModelsyncError(f"{directory} is not a directory: pass the model folder to publish")
    paths = []
    for current, dirnames, filenames in os.walk(root):
        for dirname in dirnames:
            if os.path.islink(os.path.join(current, dirname)):
                raise ModelsyncError(
                    f"{os.path.join(current, dirname)} is a symlinked directory: replace it with a real one to publish"
                )
        for filename in filenames:
            full = os.path.join(current, filename)
            real = os.path.realpath(full)
            if os.path.commonpath([root, real]) != root:
                raise ModelsyncError(f"{full} links outside {directory}: copy the file in or remove the link")
            if not os.path.isfile(real):
                raise ModelsyncError(f"{full} is not a regular file: remove it before publishing")
            rel = os.path.relpath(full, root).replace(os.sep, "/")
            problem = path_problem(rel)
            if problem:  # refused here, or LATEST would move to a version every pull refuses
                raise ModelsyncError(
                    f"cannot publish {os.path.join(directory, rel)!r}: its path {problem}, "
                    "which pull refuses: rename it"
                )
            paths.append(rel)
        if len(paths) > MAX_MANIFEST_FILES:  # pull refuses such a manifest: do not publish one
            raise ModelsyncError(
                f"{directory} holds more than {MAX_MANIFEST_FILES} files, more than a model may "
                "have: publish the model folder itself, not a folder above it"
            )
    if not paths:
        raise ModelsyncError(f"{directory} contains no files: nothing to publish")
    return sorted(paths)


class _ProgressSubscriber(BaseSubscriber):
    def __init__(self, progress: Progress):
        self.progress = progress

    def on_progress(self, future, bytes_transferred, **kwargs):
        self.progress.advance(bytes_transferred)


def publish_directory(
    client,
    bucket: str,
    name: str,
    directory,
    *,
    prefix: str = DEFAULT_PREFIX,
    source: dict | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    progress: Progress | None = None,
    part_size: int | None = None,
    signer: Signer | None = None,
) -> PublishResult:
    """signer: sign the manifest and LATEST (docs/contracts.md, Signatures); a manifest already there whose
    signature does not verify with the signer's public key is written again, signed."""
    check_name(name)
    progress = or_silent(progress)
    directory = os.fspath(directory)
    root = os.path.realpath(directory)
    paths = scan_directory(directory)
    # Taken before hashing and compared after the upload: a file rewritten in between would
    # otherwise give objects that do not match the manifest.
    before = {p: stat_key(os.stat(os.path.join(root, p))) for p in paths}
    digests = sha256_many([os.path.join(root, p) for p in paths])
    entries = []
    for path in paths:
        digest = digests[os.path.join(root, path)]
        if isinstance(digest, OSError):
            raise ModelsyncError(
                f"cannot read {os.path.join(directory, path)} ({digest.strerror}): fix its permissions"
            )
        entries.append(FileEntry(path, before[path][0], digest))
    version = content_version(entries)

    existing = read_manifest(client, bucket, name, version, prefix=prefix)
    verifier = signer.verifier() if signer is not None else None
    # An unsigned or wrongly signed manifest is not trusted as complete: it is written again, signed.
    if existing is not None and verifier is not None:
        if published_problem(client, bucket, prefix, existing, verifier, latest=False) is not None:
            existing = None
    complete = existing is not None
    # Objects already under this version's prefix come from an earlier or interrupted publish of
    # the very same content (the version is the content hash); S3 writes whole objects only. One
    # LIST also catches objects deleted since (a published version stays repairable).
    present = {
        obj["Key"]: obj["Size"] for obj in list_keys(client, bucket, version_prefix(prefix, name, version) + "files/")
    }
    todo = [e for e in entries if present.get(file_key(prefix, name, version, e.path)) != e.size]
    if not complete:  # resuming: also compare the sha256 each object was stored with
        todo += _stored_with_other_sha256(
            client, bucket, prefix, name, version, [e for e in entries if e not in todo], concurrency
        )
    if existing is not None and not todo:
        if verifier is not None:
            resign = published_problem(client, bucket, prefix, existing, verifier, latest=True) is not None
            if resign:
                _put_latest(client, bucket, prefix, existing, signer)
            return PublishResult(name, version, 0, 0, len(entries), unchanged=True, resigned=resign)
        if read_latest_version(client, bucket, name, prefix=prefix) != version:
            _put_latest(client, bucket, prefix, existing, None)
        return PublishResult(name, version, 0, 0, len(entries), unchanged=True)

    uploaded_bytes = sum(e.size for e in todo)
    progress.begin(f"{name}@{version}", uploaded_bytes, model=name, version=version, files=len(todo))
    part_size = part_size or default_part_size()
    config = TransferConfig(multipart_threshold=part_size, multipart_chunksize=part_size, max_concurrency=concurrency)
    try:
        with create_transfer_manager(client, config) as manager:
            futures = [
                manager.upload(
                    os.path.join(root, e.path),
                    bucket,
                    file_key(prefix, name, version, e.path),
                    extra_args={"Metadata": {"sha256": e.sha256}},
                    subscribers=[_ProgressSubscriber(progress)],
                )
                for e in todo
            ]
            for future in futures:
                future.result()
        _refuse_changed_files(client, bucket, prefix, name, version, directory, root, todo, before)
        manifest = existing
        if manifest is None:
            manifest = Manifest(name, version, now_created(), dict(source or {}), entries)
            if signer is not None:  # before the manifest: a reader that finds the manifest finds its signature
                _put_json(
                    client,
                    bucket,
                    signature_key(prefix, name, version),
                    make_envelope(signer, "manifest", name, version, manifest_digest(manifest)),
                )
            _put_body(client, bucket, manifest_key(prefix, name, version), manifest.to_json().encode())
        _put_latest(client, bucket, prefix, manifest, signer)
    except (bx.ClientError, bx.BotoCoreError) as exc:
        raise translate_client_error(exc, bucket=bucket, key=version_prefix(prefix, name, version)) from None
    progress.end(model=name, version=version, uploaded_files=len(todo))
    return PublishResult(name, version, len(todo), uploaded_bytes, len(entries) - len(todo), unchanged=False)


# Stored on the object of a file that changed while it was uploaded: matches no sha256, so a resume
# uploads the file again (and a pull of a version that has a manifest reports it as wrong-size).
INVALIDATED_SHA256 = "changed-while-publishing"


def _stored_with_other_sha256(
    client, bucket, prefix, name, version, entries: list[FileEntry], concurrency: int
) -> list[FileEntry]:
    """Entries whose object's sha256 metadata is not the entry's (one HEAD each; resumes only)."""

    def differs(entry: FileEntry) -> bool:
        try:
            head = client.head_object(Bucket=bucket, Key=file_key(prefix, name, version, entry.path))
        except bx.ClientError as exc:
            if is_not_found(exc):  # deleted since the LIST: upload it again
                return True
            raise
        return head.get("Metadata", {}).get("sha256") != entry.sha256

    try:
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            flags = list(pool.map(differs, entries))
    except (bx.ClientError, bx.BotoCoreError) as exc:
        raise translate_client_error(exc, bucket=bucket, key=version_prefix(prefix, name, version)) from None
    return [e for e, bad in zip(entries, flags, strict=True) if bad]


def _refuse_changed_files(client, bucket, prefix, name, version, directory, root, uploaded, before) -> None:
    """Fail when an uploaded file changed after it was hashed, invalidating its object first: its
    bytes may not match the sha256 it was stored with, and a later resume must not trust it.
    Overwritten rather than deleted: the publishing role may write models/ but not delete."""
    changed = []
    for entry in uploaded:
        try:
            now = stat_key(os.stat(os.path.join(root, entry.path)))
        except OSError:
            now = None
        if now != before[entry.path]:
            changed.append(entry)
    if not changed:
        return
    for entry in changed:
        client.put_object(
            Bucket=bucket,
            Key=file_key(prefix, name, version, entry.path),
            Body=b"",
            Metadata={"sha256": INVALIDATED_SHA256},
        )
    raise JobFailed(
        f"{os.path.join(directory, changed[0].path)} changed while publishing: publish again "
        "once nothing writes to the folder"
    )


def _put_latest(client, bucket: str, prefix: str, manifest: Manifest, signer: Signer | None) -> None:
    """LATEST, written last; signed, it names the manifest's digest, so pointing it elsewhere breaks it."""
    data: dict = {"version": manifest.version}
    if signer is not None:
        data["signature"] = make_envelope(signer, "latest", manifest.name, manifest.version, manifest_digest(manifest))
    _put_json(client, bucket, latest_key(prefix, manifest.name), data)


def _put_json(client, bucket: str, key: str, data: dict) -> None:
    _put_body(client, bucket, key, json.dumps(data).encode())


def _put_body(client, bucket: str, key: str, body: bytes) -> None:
    try:
        client.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json")
    except (bx.ClientError, bx.BotoCoreError) as exc:
        raise translate_client_error(exc, bucket=bucket, key=key) from None
