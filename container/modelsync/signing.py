"""Signed manifests and LATEST pointers (docs/contracts.md, "Signatures").

One algorithm, ECDSA P-256 with SHA-256 (DER signatures), two kinds of key reference:
a KMS key (`arn:aws:kms:...` or `alias/...`) or a PEM file. KMS `Sign` (ECDSA_SHA_256, RAW) returns
DER, which `cryptography` verifies directly, so every check runs locally: a KMS trust key costs one
`kms:GetPublicKey` per process and no `kms:Verify`.

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
import os
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from .errors import JobFailed, ModelsyncError
from .manifest import Manifest, manifest_key
from .s3 import get_small_object

FORMAT = "modelsync-signature-1"
ALGORITHM = "ECDSA_SHA_256"
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


def is_kms_ref(ref: str) -> bool:
    return ref.startswith("alias/") or (ref.startswith("arn:") and ":kms:" in ref)


# Keys ---------------------------------------------------------------------------------------


@dataclass
class Verifier:
    ref: str  # what the user configured, shown in messages
    public_key: Any  # cryptography EllipticCurvePublicKey (imported only when a key is configured)

    def valid(self, message: bytes, signature: bytes) -> bool:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec

        try:
            self.public_key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
            return True
        except (InvalidSignature, ValueError):
            return False


class Signer:
    """Signs with a PEM private key or with KMS (the key never leaves KMS)."""

    def __init__(self, ref: str):
        self.ref = ref
        self._private = (
            None
            if is_kms_ref(ref)
            else _load_pem(ref, private=True, option="--signing-key", env="MODELSYNC_SIGNING_KEY")
        )

    def sign(self, message: bytes) -> bytes:
        if self._private is not None:
            from cryptography.hazmat.primitives import hashes
            from cryptography.hazmat.primitives.asymmetric import ec

            return self._private.sign(message, ec.ECDSA(hashes.SHA256()))
        import botocore.exceptions as bx

        try:
            return _kms_client(self.ref).sign(
                KeyId=self.ref, Message=message, MessageType="RAW", SigningAlgorithm=ALGORITHM
            )["Signature"]
        except (bx.ClientError, bx.BotoCoreError) as exc:
            raise ModelsyncError(
                f"cannot sign with KMS key {self.ref} ({_aws_problem(exc)}): check the key and that "
                "this role may kms:Sign with it (--signing-key / MODELSYNC_SIGNING_KEY)"
            ) from None

    def verifier(self) -> Verifier:
        if self._private is not None:
            return Verifier(self.ref, self._private.public_key())
        return load_verifier(self.ref)

    def envelope(self, kind: str, name: str, version: str, digest: str) -> dict:
        signature = self.sign(statement(kind, name, version, digest))
        return {
            "format": FORMAT,
            "algorithm": ALGORITHM,
            "key": _key_hint(self.ref),
            "signature": base64.b64encode(signature).decode(),
        }


def load_verifier(ref: str) -> Verifier:
    if is_kms_ref(ref):
        return _kms_verifier(ref)
    return Verifier(ref, _load_pem(ref, private=False, option="--trust-key", env="MODELSYNC_TRUST_KEY"))


def load_signer(ref: str | None) -> Signer | None:
    return Signer(ref) if ref else None


def trust_verifier(ref: str | None) -> Verifier | None:
    return load_verifier(ref) if ref else None


@lru_cache(maxsize=8)
def _kms_verifier(ref: str) -> Verifier:
    """The KMS key's public key, fetched once per process (kms:GetPublicKey); checks are local."""
    import botocore.exceptions as bx
    from cryptography.hazmat.primitives import serialization

    try:
        response = _kms_client(ref).get_public_key(KeyId=ref)
    except (bx.ClientError, bx.BotoCoreError) as exc:
        raise ModelsyncError(
            f"cannot get the public key of KMS key {ref} ({_aws_problem(exc)}): check the key "
            "and that this role may kms:GetPublicKey (--trust-key / MODELSYNC_TRUST_KEY)"
        ) from None
    spec = response.get("KeySpec") or response.get("CustomerMasterKeySpec")
    if spec != "ECC_NIST_P256" or ALGORITHM not in response.get("SigningAlgorithms", []):
        raise ModelsyncError(
            f"KMS key {ref} is {spec}, not an ECC_NIST_P256 SIGN_VERIFY key: use the "
            "models signing key (output of the storage stack)"
        )
    return Verifier(ref, serialization.load_der_public_key(response["PublicKey"]))


def _kms_client(ref: str):
    import boto3

    parts = ref.split(":")
    region = parts[3] if ref.startswith("arn:") and len(parts) > 3 and parts[3] else None
    return boto3.client("kms", region_name=region) if region else boto3.client("kms")


def _aws_problem(exc) -> str:
    error = getattr(exc, "response", {}).get("Error", {}) if hasattr(exc, "response") else {}
    return f"{error.get('Code')}: {error.get('Message', '')}".strip() if error else str(exc)


def _load_pem(path: str, *, private: bool, option: str, env: str):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    what = "private" if private else "public"
    try:
        with open(path, "rb") as handle:
            data = handle.read(64 * 1024)
    except OSError as exc:
        raise ModelsyncError(
            f"{option} / {env} {path}: cannot read it ({exc.strerror}): give a KMS key ARN, "
            f"alias/NAME or a PEM file with an EC P-256 {what} key"
        ) from None
    key: Any  # a private or a public key object, of any type until the curve is checked below
    try:
        if private:
            key = serialization.load_pem_private_key(data, password=None)
        elif b"PRIVATE KEY" in data:  # a private key file also holds the public key
            key = serialization.load_pem_private_key(data, password=None).public_key()
        else:
            key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError):
        raise ModelsyncError(
            f"{option} / {env} {path} is not an unencrypted PEM {what} key: make one with "
            "openssl ecparam -name prime256v1 (docs/runtime.md)"
        ) from None
    curve = getattr(key, "curve", None)
    if not isinstance(curve, ec.SECP256R1):
        raise ModelsyncError(
            f"{option} / {env} {path} is not an EC P-256 (prime256v1) key: modelsync signs "
            "with ECDSA P-256 / SHA-256 only"
        )
    return key


def _key_hint(ref: str) -> str:
    """Which key signed, for people reading the bucket (never trusted: the verifier's key decides)."""
    return ref if is_kms_ref(ref) else f"pem:{os.path.basename(ref)}"


# Envelopes ----------------------------------------------------------------------------------


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


def write_local_envelope(store, name: str, version: str, envelope: dict) -> None:
    store.write_record_file(name, f"{version}{SIGNATURE_SUFFIX}", json.dumps(envelope, sort_keys=True).encode())


def read_local_envelope(store, name: str, version: str) -> dict | None:
    raw = store.read_record_file(name, f"{version}{SIGNATURE_SUFFIX}", limit=MAX_SIGNATURE_BYTES + 1)
    return None if raw is None else _parse(raw)


# Checks -------------------------------------------------------------------------------------


def check_pull_targets(
    client, bucket: str, prefix: str, store, targets, models: list[str] | None, verifier: Verifier
) -> None:
    """Refuse (JobFailed, before anything is downloaded or switched) any target whose manifest, or
    LATEST when it was resolved through LATEST, is not signed by the trust key; then keep each
    verified manifest signature next to its local record, for `verify --trust-key`."""
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
