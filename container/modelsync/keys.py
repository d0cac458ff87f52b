"""Signing and trust keys: ECDSA P-256 with SHA-256 (DER signatures), from a KMS key ARN or a PEM file.

KMS `Sign` (ECDSA_SHA_256) returns DER, which `cryptography` verifies directly, so every check runs
locally: a KMS trust key costs one `kms:GetPublicKey` per process and no `kms:Verify`. A KMS alias is
refused: whoever may update the alias could point it at another key, so the reference must name the key.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from .errors import ModelsyncError

ALGORITHM = "ECDSA_SHA_256"
KMS_RAW_LIMIT = 4096  # KMS signs a RAW message of at most 4,096 bytes; a longer one is sent as its SHA-256
SIGNING = ("--signing-key", "MODELSYNC_SIGNING_KEY")
TRUST = ("--trust-key", "MODELSYNC_TRUST_KEY")


def is_kms_ref(ref: str) -> bool:
    return ref.startswith("alias/") or (ref.startswith("arn:") and ":kms:" in ref)


def _check_ref(ref: str, where: tuple[str, str]) -> None:
    if ref.startswith("alias/") or (is_kms_ref(ref) and ":alias/" in ref):
        raise ModelsyncError(
            f"{where[0]} / {where[1]} {ref} is a KMS alias: use the key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID); "
            "an alias can be re-pointed to another key"
        )


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

    @property
    def hint(self) -> str:
        return public_key_hint(self.public_key)


def public_key_hint(public_key) -> str:
    """The key's fingerprint as OMS bundles name it (`publicKey.hint`): sha256 of its PEM SubjectPublicKeyInfo."""
    from cryptography.hazmat.primitives import serialization

    pem = public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(pem).hexdigest()


class Signer:
    """Signs with a PEM private key or with KMS (the key never leaves KMS)."""

    def __init__(self, ref: str):
        _check_ref(ref, SIGNING)
        self.ref = ref
        self._private = None if is_kms_ref(ref) else _load_pem(ref, private=True, where=SIGNING)

    def sign(self, message: bytes) -> bytes:
        if self._private is not None:
            from cryptography.hazmat.primitives import hashes
            from cryptography.hazmat.primitives.asymmetric import ec

            return self._private.sign(message, ec.ECDSA(hashes.SHA256()))
        import botocore.exceptions as bx

        if len(message) <= KMS_RAW_LIMIT:
            request = {"Message": message, "MessageType": "RAW"}
        else:  # ECDSA_SHA_256 over the digest: the same signature KMS would make of the whole message
            request = {"Message": hashlib.sha256(message).digest(), "MessageType": "DIGEST"}
        try:
            return _kms_client(self.ref).sign(KeyId=self.ref, SigningAlgorithm=ALGORITHM, **request)["Signature"]
        except (bx.ClientError, bx.BotoCoreError) as exc:
            raise ModelsyncError(
                f"cannot sign with KMS key {self.ref} ({_aws_problem(exc)}): check the key and that "
                "this role may kms:Sign with it (--signing-key / MODELSYNC_SIGNING_KEY)"
            ) from None

    def verifier(self) -> Verifier:
        if self._private is not None:
            return Verifier(self.ref, self._private.public_key())
        return load_verifier(self.ref, where=SIGNING)

    @property
    def hint(self) -> str:
        return self.verifier().hint


def load_verifier(ref: str, *, where: tuple[str, str] = TRUST) -> Verifier:
    """where: the (flag, variable) that named the key, for messages."""
    _check_ref(ref, where)
    if is_kms_ref(ref):
        return _kms_verifier(ref, where)
    return Verifier(ref, _load_pem(ref, private=False, where=where))


def load_signer(ref: str | None) -> Signer | None:
    return Signer(ref) if ref else None


def trust_verifier(ref: str | None) -> Verifier | None:
    return load_verifier(ref) if ref else None


@lru_cache(maxsize=8)
def _kms_verifier(ref: str, where: tuple[str, str]) -> Verifier:
    """The KMS key's public key, fetched once per process (kms:GetPublicKey); checks are local."""
    import botocore.exceptions as bx
    from cryptography.hazmat.primitives import serialization

    try:
        response = _kms_client(ref).get_public_key(KeyId=ref)
    except (bx.ClientError, bx.BotoCoreError) as exc:
        raise ModelsyncError(
            f"cannot get the public key of KMS key {ref} ({_aws_problem(exc)}): check the key "
            f"and that this role may kms:GetPublicKey ({where[0]} / {where[1]})"
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


def _load_pem(path: str, *, private: bool, where: tuple[str, str]):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    what = "private" if private else "public"
    option, env = where
    try:
        with open(path, "rb") as handle:
            data = handle.read(64 * 1024)
    except OSError as exc:
        raise ModelsyncError(
            f"{option} / {env} {path}: cannot read it ({exc.strerror}): give a KMS key ARN "
            f"or a PEM file with an EC P-256 {what} key"
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


def key_label(ref: str) -> str:
    """Which key signed, for people reading the bucket (never trusted: the verifier's key decides)."""
    return ref if is_kms_ref(ref) else f"pem:{os.path.basename(ref)}"
