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
import hashlib
import json

from .errors import JobFailed
from .keys import ALGORITHM, Signer, Verifier, key_label
from .manifest import Manifest, manifest_key
from .objects import Objects

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


def read_envelope(objects: Objects, name: str, version: str) -> dict | None:
    body = objects.read(
        signature_key(objects.prefix, name, version), max_bytes=MAX_SIGNATURE_BYTES, what="manifest signature"
    )
    return parse_json_object(body)


def parse_json_object(body: bytes | None):
    """A small JSON object read from S3 or the store: None when absent, {} when not a JSON object."""
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


def write_local_envelope(store, name: str, version: str, envelope: dict) -> None:
    store.write_record_file(name, f"{version}{SIGNATURE_SUFFIX}", json.dumps(envelope, sort_keys=True).encode())


def read_local_envelope(store, name: str, version: str) -> dict | None:
    raw = store.read_record_file(name, f"{version}{SIGNATURE_SUFFIX}", limit=MAX_SIGNATURE_BYTES + 1)
    return parse_json_object(raw)
