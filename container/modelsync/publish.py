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

from . import dsse, freshness, oms
from .conditional import (
    CONFLICT,
    CONFLICT_ATTEMPTS,
    PRECONDITION_FAILED,
    conflict_pause,
    create_only,
    error_code,
    put_new,
)
from .config import DEFAULT_CONCURRENCY, DEFAULT_PREFIX, check_name, default_part_size
from .errors import JobFailed, ModelsyncError
from .hashing import sha256_many
from .keys import Signer, Verifier
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
from .objects import S3Objects
from .oms import BUNDLE_NAME
from .progress import Progress, or_silent
from .s3 import list_keys, object_sha256, translate_client_error
from .signing import make_envelope, manifest_digest, signature_key
from .staging import write_staged
from .store import stat_key
from .trust import latest_problem, manifest_problem, published_problem


@dataclass
class PublishResult:
    name: str
    version: str
    uploaded_files: int
    uploaded_bytes: int
    skipped_files: int
    unchanged: bool
    resigned: bool = False  # signing rewrote an unsigned or wrongly signed manifest or LATEST


def scan_directory(directory: str, *, signed_folder: bool = False) -> list[str]:
    """Relative POSIX paths of every regular file; symlinks must stay inside the folder. A top-level
    model.sig is the folder's OMS signature when signed_folder, else refused."""
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
            if rel == BUNDLE_NAME:
                if signed_folder:
                    continue  # the folder's own signature (publish --verify-oms), not a file of the model
                raise ModelsyncError(
                    f"{full} is where modelsync keeps the version's OMS bundle: check a training-time signature "
                    "with --verify-oms PUBKEY (it is then not published as a file), or rename it"
                )
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
    verify_oms: Verifier | None = None,
    stage: bool = False,
) -> PublishResult:
    """signer: sign the manifest and LATEST (docs/contracts.md, Signatures); a manifest already there whose
    signature does not verify with the signer's public key is written again, signed.
    verify_oms: refuse (JobFailed, before any upload) a folder whose model.sig is not an OMS bundle by this
    key of exactly its files (made at training time, e.g. `model_signing sign key`).
    stage: upload files and manifest, then point the staging pointer (staging.py), not LATEST, at the
    version: the signing step (sign.py) checks, signs and moves LATEST. Never with a signer."""
    if stage and signer is not None:
        raise ValueError("a staged version is signed by the signing step, not by publish")
    check_name(name)
    progress = or_silent(progress)
    directory = os.fspath(directory)
    root = os.path.realpath(directory)
    paths = scan_directory(directory, signed_folder=verify_oms is not None)
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
    if verify_oms is not None:
        _check_folder_signature(root, directory, entries, verify_oms)
    version = content_version(entries)

    existing = read_manifest(client, bucket, name, version, prefix=prefix)
    where = f"s3://{bucket}/{version_prefix(prefix, name, version)}"
    if existing is not None and sorted(existing.files, key=lambda e: e.path) != entries:
        raise JobFailed(
            f"{where}manifest.json lists other files than {directory} under the same version, and a version's "
            "objects are never replaced: delete the version's objects (an operator; publishers cannot), then "
            "publish again"
        )
    verifier = signer.verifier() if signer is not None else None
    # A manifest not signed by this key is not trusted as complete: its objects are checked, then it is signed.
    trusted = existing is not None and (
        verifier is None or manifest_problem(client, bucket, prefix, existing, verifier) is None
    )
    if existing is not None and not trusted and signer is not None and existing.source != dict(source or {}):
        raise JobFailed(  # signing it would vouch for a provenance this publish does not claim
            f"{where}manifest.json is not signed by the signing key and names another source than this publish, "
            "and a version's manifest is never replaced: delete it (an operator; publishers cannot), then publish "
            "again"
        )
    # Objects already under this version's prefix come from an earlier or interrupted publish of the very same
    # content (the version is the content hash). They are never replaced (conditional.py), so they must be it:
    # one LIST for the sizes, and when resuming the bytes themselves, read back and hashed.
    files_prefix = version_prefix(prefix, name, version) + "files/"
    present = {obj["Key"]: obj["Size"] for obj in list_keys(client, bucket, files_prefix)}
    todo = [e for e in entries if file_key(prefix, name, version, e.path) not in present]
    there = [e for e in entries if e not in todo]
    _refuse_other_objects(client, bucket, prefix, name, version, directory, there, present, hash_them=not trusted)
    if trusted and existing is not None and not todo:
        if stage:
            write_staged(client, bucket, prefix, name, version)
            return PublishResult(name, version, 0, 0, len(entries), unchanged=True)
        if signer is not None:
            resigned = bring_to_current_format(client, bucket, prefix, existing, signer)
            return PublishResult(name, version, 0, 0, len(entries), unchanged=True, resigned=resigned)
        if read_latest_version(client, bucket, name, prefix=prefix) != version:
            put_latest(client, bucket, prefix, existing, None)
        return PublishResult(name, version, 0, 0, len(entries), unchanged=True)

    progress.begin(f"{name}@{version}", sum(e.size for e in todo), model=name, version=version, files=len(todo))
    part_size = part_size or default_part_size()
    config = TransferConfig(multipart_threshold=part_size, multipart_chunksize=part_size, max_concurrency=concurrency)
    try:
        with create_only(client, bucket, files_prefix):
            arrived = _upload_new(client, config, bucket, prefix, name, version, root, todo, progress)
        _refuse_changed_files(bucket, prefix, name, version, directory, root, todo, before)
        # Written by another publish of the same content between the LIST and the upload: it must be this content.
        _refuse_other_objects(client, bucket, prefix, name, version, directory, arrived, None, hash_them=True)
        manifest = existing
        if manifest is None:
            manifest = Manifest(name, version, now_created(), dict(source or {}), entries)
            if signer is not None:  # before the manifest: a reader that finds the manifest finds its signatures
                sign_version(client, bucket, prefix, manifest, signer)
            if not put_new(client, bucket, manifest_key(prefix, name, version), manifest.to_json().encode(), **JSON):
                manifest = _manifest_meanwhile(client, bucket, prefix, name, version, directory, entries)
                if signer is not None:
                    sign_version(client, bucket, prefix, manifest, signer)
        elif signer is not None and published_problem(
            client, bucket, prefix, manifest, signer.verifier(), latest=False, current=True
        ):
            sign_version(client, bucket, prefix, manifest, signer)
        if stage:
            write_staged(client, bucket, prefix, name, version)
        else:
            put_latest(client, bucket, prefix, manifest, signer)
    except (bx.ClientError, bx.BotoCoreError) as exc:
        raise translate_client_error(exc, bucket=bucket, key=version_prefix(prefix, name, version)) from None
    uploaded = [e for e in todo if e not in arrived]
    progress.end(model=name, version=version, uploaded_files=len(uploaded))
    return PublishResult(
        name, version, len(uploaded), sum(e.size for e in uploaded), len(entries) - len(uploaded), unchanged=False
    )


def _upload_new(client, config, bucket, prefix, name, version, root, todo, progress) -> list[FileEntry]:
    """Upload todo (the caller's create_only makes every upload conditional); the entries whose object was
    already there (412) are returned, a conflicting concurrent write (409) is tried again."""
    arrived: list[FileEntry] = []
    for attempt in range(1, CONFLICT_ATTEMPTS + 1):
        conflicts = []
        with create_transfer_manager(client, config) as manager:
            futures = [
                (
                    e,
                    manager.upload(
                        os.path.join(root, e.path),
                        bucket,
                        file_key(prefix, name, version, e.path),
                        extra_args={"Metadata": {"sha256": e.sha256}},
                        subscribers=[_ProgressSubscriber(progress)],
                    ),
                )
                for e in todo
            ]
            for entry, future in futures:
                try:
                    future.result()
                except bx.ClientError as exc:
                    code = error_code(exc)
                    if code == PRECONDITION_FAILED:
                        arrived.append(entry)
                    elif code == CONFLICT and attempt < CONFLICT_ATTEMPTS:
                        conflicts.append(entry)
                    else:
                        raise
        if not conflicts:
            break
        todo = conflicts
        conflict_pause(attempt)
    return arrived


def _refuse_other_objects(
    client, bucket, prefix, name, version, directory, entries: list[FileEntry], sizes: dict | None, *, hash_them: bool
) -> None:
    """JobFailed unless each entry's object is this content: its size (sizes: from a LIST; None: read), and with
    hash_them its bytes read back and hashed (what a resume or a lost race would otherwise trust)."""
    if not entries:
        return
    keys = {e.path: file_key(prefix, name, version, e.path) for e in entries}
    if sizes is not None:
        for entry in entries:
            if sizes[keys[entry.path]] != entry.size:
                raise _other_object(bucket, keys[entry.path], directory, entry, f"{sizes[keys[entry.path]]} bytes")
    if not hash_them:
        return
    with ThreadPoolExecutor(max_workers=min(16, len(entries))) as pool:
        found = list(pool.map(lambda e: object_sha256(client, bucket, keys[e.path]), entries))
    for entry, (digest, size) in zip(entries, found, strict=True):
        if (digest, size) != (entry.sha256, entry.size):
            raise _other_object(bucket, keys[entry.path], directory, entry, f"sha256 {digest[:12]}..., {size} bytes")


def _other_object(bucket: str, key: str, directory: str, entry: FileEntry, what: str) -> JobFailed:
    return JobFailed(
        f"s3://{bucket}/{key} holds other bytes ({what}) than {os.path.join(directory, entry.path)}, and a "
        "version's objects are never replaced (If-None-Match): delete that object (an operator; publishers "
        "cannot), then publish again"
    )


def _manifest_meanwhile(client, bucket, prefix, name, version, directory, entries) -> Manifest:
    """The manifest another publish of the same content wrote between our read and our write (412)."""
    manifest = read_manifest(client, bucket, name, version, prefix=prefix)
    if manifest is None or sorted(manifest.files, key=lambda e: e.path) != entries:
        raise JobFailed(
            f"s3://{bucket}/{manifest_key(prefix, name, version)} was written by someone else meanwhile and does "
            f"not list the files of {directory}: publish again"
        )
    return manifest


def _check_folder_signature(root: str, directory: str, entries: list[FileEntry], verifier: Verifier) -> None:
    where = os.path.join(directory, BUNDLE_NAME)
    try:
        with open(os.path.join(root, BUNDLE_NAME), "rb") as handle:
            data = handle.read(oms.MAX_BUNDLE_BYTES + 1)
    except FileNotFoundError:
        raise JobFailed(
            f"--verify-oms: {where} does not exist: sign the folder first (model_signing sign key)"
        ) from None
    try:
        signed = oms.signed_files(data, verifier)
    except dsse.Refused as exc:
        raise JobFailed(f"--verify-oms refused {directory}: it has {exc}") from None
    problem = oms.files_problem(signed, {e.path: e.sha256 for e in entries}, where=where)
    if problem:
        raise JobFailed(f"--verify-oms refused {directory}: {problem}: publish exactly the folder that was signed")


def _refuse_changed_files(bucket, prefix, name, version, directory, root, uploaded, before) -> None:
    """Fail, before the manifest, when an uploaded file changed after it was hashed: its object may hold bytes
    other than the manifest's sha256. It cannot be replaced (If-None-Match) and publishers cannot delete: the
    version stays without a manifest, and a later publish of that content reads its bytes back and refuses
    them (_refuse_other_objects); sign and pull check every byte too."""
    changed = []
    for entry in uploaded:
        try:
            now = stat_key(os.stat(os.path.join(root, entry.path)))
        except OSError:
            now = None
        if now != before[entry.path]:
            changed.append(entry)
    if changed:
        key = file_key(prefix, name, version, changed[0].path)
        raise JobFailed(
            f"{os.path.join(directory, changed[0].path)} changed while publishing: publish again once nothing "
            f"writes to the folder (s3://{bucket}/{key} may hold the changed bytes; it is never trusted)"
        )


def sign_version(client, bucket: str, prefix: str, manifest: Manifest, signer: Signer) -> None:
    """The signatures of a version: the manifest's envelope and the OMS bundle of its files."""
    name, version = manifest.name, manifest.version
    envelope = make_envelope(signer, "manifest", name, version, manifest_digest(manifest))
    _put_json(client, bucket, signature_key(prefix, name, version), envelope)
    _put_body(client, bucket, oms.bundle_key(prefix, name, version), oms.make_bundle(signer, manifest))


def put_latest(
    client,
    bucket: str,
    prefix: str,
    manifest: Manifest,
    signer: Signer | None,
    *,
    after: freshness.Latest | None = None,
) -> None:
    """LATEST, written last. Signed: the envelope older readers check (it names the manifest's digest, so
    pointing LATEST elsewhere breaks it) and the statement that also binds the repository, the next
    sequence and the signing time (freshness.py). The sequence follows `after` (the highest statement the
    caller found, e.g. in LATEST's history), else the current LATEST's statement when it is this key's."""
    data: dict = {"version": manifest.version}
    if signer is not None:
        repo, digest = freshness.repository(bucket, prefix), manifest_digest(manifest)
        if after is None:
            after = freshness.ours(
                freshness.read_object(S3Objects(client, bucket, prefix), manifest.name), signer.verifier(), repo
            )
        try:
            sequence = freshness.next_sequence(after)
        except dsse.Refused as exc:
            raise JobFailed(f"cannot move s3://{bucket}/{latest_key(prefix, manifest.name)}: it has {exc}") from None
        data["signature"] = make_envelope(signer, "latest", manifest.name, manifest.version, digest)
        data["statement"] = freshness.make_statement(signer, repo, manifest, sequence, digest)
    _put_json(client, bucket, latest_key(prefix, manifest.name), data)


def bring_to_current_format(client, bucket: str, prefix: str, manifest: Manifest, signer: Signer) -> bool:
    """Sign a published version whose manifest signature verifies again where the current format is missing
    or invalid (its OMS bundle; LATEST, when it points here). True when anything was written."""
    verifier, changed = signer.verifier(), False
    if published_problem(client, bucket, prefix, manifest, verifier, latest=False, current=True):
        sign_version(client, bucket, prefix, manifest, signer)
        changed = True
    if latest_problem(client, bucket, prefix, manifest, verifier, current=True):
        put_latest(client, bucket, prefix, manifest, signer)
        changed = True
    return changed


def _put_json(client, bucket: str, key: str, data: dict) -> None:
    _put_body(client, bucket, key, json.dumps(data).encode())


JSON = {"ContentType": "application/json"}


def _put_body(client, bucket: str, key: str, body: bytes) -> None:
    """A mutable object (LATEST, signatures, model.sig): replaced in place."""
    try:
        client.put_object(Bucket=bucket, Key=key, Body=body, **JSON)
    except (bx.ClientError, bx.BotoCoreError) as exc:
        raise translate_client_error(exc, bucket=bucket, key=key) from None
