"""Signed manifests and LATEST pointers (docs/contracts.md, "Signatures").

The keys: keys.py.

What is signed is a short statement, never the (possibly large) manifest itself:
`{"kind": "manifest"|"latest", "manifest_sha256": ..., "name": ..., "version": ...}` (compact JSON,
sorted keys), where manifest_sha256 is the sha256 of the manifest's canonical JSON
(`Manifest.to_json()`, exactly what publish writes). The verifier rebuilds the statement from what it
read, so a changed manifest, a signature copied to another model or version, or a LATEST pointed at
another version without a new signature no longer matches.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os

from .errors import JobFailed
from .keys import ALGORITHM, Signer, Verifier, key_label
from .manifest import Manifest, manifest_key
from .s3 import get_small_object

FORMAT = "modelsync-signature-1"
SIGNATURE_SUFFIX = ".sig"  # <prefix><name>/<version>/manifest.json.sig; locally records/<name>/<version>.sig
MAX_SIGNATURE_BYTES = 4096  # an envelope is about 250 bytes


def signature_key(prefix: str, name: str, version: str) -> str:
    return manifest_key(prefix, name, version) + SIGNATURE_SUFFIX


def manifest_digest(manifest: Manifest) -> str:
    return hashlib.sha256(manifest.to_json().encode()).hexdigest()


def statement(kind: str, name: str, version: str, digest: str) -> bytes:
    return json.dumps(
        {"kind": kind, "manifest_sha256": digest, "name": name, "version": version},
        sort_keys=True,
        separators=(",", ":"),
    ).encode()


# Envelopes ----------------------------------------------------------------------------------


def make_envelope(signer: Signer, kind: str, name: str, version: str, digest: str) -> dict:
    signature = signer.sign(statement(kind, name, version, digest))
    return {
        "format": FORMAT,
        "algorithm": ALGORITHM,
        "key": key_label(signer.ref),
        "signature": base64.b64encode(signature).decode(),
    }


def envelope_problem(verifier: Verifier, envelope, kind: str, name: str, version: str, digest: str) -> str | None:
    """Why envelope is not a valid signature by verifier of this statement (None: it is)."""
    if envelope is None:
        return "no signature"
    if not isinstance(envelope, dict) or envelope.get("format") != FORMAT or envelope.get("algorithm") != ALGORITHM:
        return f"not a {FORMAT} {ALGORITHM} signature"
    try:
        signature = base64.b64decode(envelope.get("signature", ""), validate=True)
    except (ValueError, TypeError):
        return "a signature that is not base64"
    if not verifier.valid(statement(kind, name, version, digest), signature):
        return f"a signature that does not verify with the trust key {verifier.ref}"
    return None


def read_envelope(client, bucket: str, prefix: str, name: str, version: str) -> dict | None:
    body = get_small_object(
        client, bucket, signature_key(prefix, name, version), max_bytes=MAX_SIGNATURE_BYTES, what="manifest signature"
    )
    return _parse(body)


def read_latest_envelope(client, bucket: str, latest_key: str) -> tuple[str | None, dict | None]:
    """(version, signature envelope) of a LATEST object (its `signature` member, absent when unsigned)."""
    from .manifest import MAX_LATEST_BYTES

    data = _parse(get_small_object(client, bucket, latest_key, max_bytes=MAX_LATEST_BYTES, what="LATEST pointer"))
    if data is None:
        return None, None
    return data.get("version"), data.get("signature")


def _parse(body: bytes | None):
    if body is None:
        return None
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


def refused(where: str, problem: str) -> JobFailed:
    return JobFailed(
        f"signature refused: {where} has {problem}: republish it with the signing key "
        "(--signing-key / MODELSYNC_SIGNING_KEY) or check --trust-key / MODELSYNC_TRUST_KEY "
        "(docs/runbook.md, signature refused)"
    )


# Local copies (the record's signature, for verify) ----------------------------------------------


def local_signature_path(store, name: str, version: str) -> str:
    return store.record_path(name, version)[: -len(".json")] + SIGNATURE_SUFFIX


def write_local_envelope(store, name: str, version: str, envelope: dict) -> None:
    path = local_signature_path(store, name, version)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    temp = store.new_temp_path()
    try:
        with open(temp, "w") as handle:
            json.dump(envelope, handle, sort_keys=True)
        os.replace(temp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)


def read_local_envelope(store, name: str, version: str) -> dict | None:
    try:
        with open(local_signature_path(store, name, version), "rb") as handle:
            return _parse(handle.read(MAX_SIGNATURE_BYTES + 1))
    except FileNotFoundError:
        return None


# Checks -------------------------------------------------------------------------------------


def check_pull_targets(
    client, bucket: str, prefix: str, store, targets, models: list[str] | None, verifier: Verifier
) -> list[tuple[str, str, dict]]:
    """Refuse (JobFailed, before anything is downloaded or switched) any target whose manifest, or
    LATEST when it was resolved through LATEST, is not signed by the trust key. Reads the store, never
    writes it (pull --dry-run): returns the verified manifest signatures for keep_envelopes."""
    from .config import parse_model_spec
    from .manifest import latest_key

    through_latest = None if models is None else {n for n, v in map(parse_model_spec, models) if v is None}
    verified = []
    for target in targets:
        name, version = target.name, target.version
        manifest = target.manifest if target.manifest is not None else target.record.manifest
        digest = manifest_digest(manifest)
        envelope = read_local_envelope(store, name, version) if target.record is not None else None
        if envelope_problem(verifier, envelope, "manifest", name, version, digest) is not None:
            envelope = read_envelope(client, bucket, prefix, name, version)
        problem = envelope_problem(verifier, envelope, "manifest", name, version, digest)
        if problem or envelope is None:
            raise refused(f"s3://{bucket}/{manifest_key(prefix, name, version)}", problem or "no signature")
        if through_latest is None or name in through_latest:
            key = latest_key(prefix, name)
            pointed, latest_envelope = read_latest_envelope(client, bucket, key)
            if pointed != version:
                raise JobFailed(f"s3://{bucket}/{key} moved from {version} to {pointed} while pulling: pull again")
            problem = envelope_problem(verifier, latest_envelope, "latest", name, version, digest)
            if problem:
                raise refused(f"s3://{bucket}/{key} (-> {version})", problem)
        verified.append((name, version, envelope))
    return verified


def keep_envelopes(store, verified: list[tuple[str, str, dict]]) -> None:
    """Keep each verified manifest signature next to its local record, for `verify --trust-key`."""
    for name, version, envelope in verified:
        write_local_envelope(store, name, version, envelope)


def record_problem(store, record, verifier: Verifier) -> str | None:
    """verify --trust-key: the local record's manifest must carry a signature by the trust key."""
    name, version = record.manifest.name, record.manifest.version
    envelope = read_local_envelope(store, name, version)
    problem = envelope_problem(verifier, envelope, "manifest", name, version, manifest_digest(record.manifest))
    if problem is None:
        return None
    return (
        f"{name}@{version}: signature refused: the local record has {problem}: pull it again with the trust "
        "key (modelsync pull --trust-key) or seed the mirror with signing on (docs/runbook.md)"
    )


def published_problem(
    client, bucket: str, prefix: str, manifest: Manifest, verifier: Verifier, *, latest: bool
) -> str | None:
    """Is this published manifest (and LATEST, when latest) signed by verifier? None when it is."""
    from .manifest import latest_key

    name, version, digest = manifest.name, manifest.version, manifest_digest(manifest)
    problem = envelope_problem(
        verifier, read_envelope(client, bucket, prefix, name, version), "manifest", name, version, digest
    )
    if problem:
        return f"s3://{bucket}/{signature_key(prefix, name, version)}: {problem}"
    if latest:
        key = latest_key(prefix, name)
        pointed, envelope = read_latest_envelope(client, bucket, key)
        problem = (
            "another version"
            if pointed != version
            else envelope_problem(verifier, envelope, "latest", name, version, digest)
        )
        if problem:
            return f"s3://{bucket}/{key}: {problem}"
    return None
