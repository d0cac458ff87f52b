"""OpenSSF Model Signing (OMS) v1.0 bundles of a version, `key` method (docs/contracts.md, "Signatures").

A Sigstore bundle (v0.3) holding a DSSE envelope around an in-toto statement whose predicate lists
every file of the version with its sha256 (serialization method `files`). The bundle lives beside the
manifest in the bucket and as `model.sig` in every pulled version directory, so the reference verifier
checks a pulled model offline:

    model_signing verify key "$(realpath /models/NAME)" --signature /models/NAME/model.sig --public_key pub.pem

(`/models/NAME` itself is modelsync's symlink, which that verifier refuses without --allow_symlinks.)
modelsync verifies bundles itself with the same rules and compares their file list with the manifest it
uses: the same names, the same sha256, no file more or less.
"""

from __future__ import annotations

import hashlib
import json

from . import dsse
from .errors import JobFailed
from .keys import Signer, Verifier
from .manifest import MAX_MANIFEST_BYTES, Manifest, version_prefix

BUNDLE_NAME = "model.sig"  # the spec's conventional name; excluded from its own file list (ignore_paths)
MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
PREDICATE_TYPE = "https://model_signing/signature/v1.0"
MAX_BUNDLE_BYTES = 2 * MAX_MANIFEST_BYTES  # base64 of a file list at most as long as the largest manifest
_HEX = frozenset("0123456789abcdef")


def bundle_key(prefix: str, name: str, version: str) -> str:
    return version_prefix(prefix, name, version) + BUNDLE_NAME


def make_bundle(signer: Signer, manifest: Manifest) -> bytes:
    """The OMS bundle of a version: its files as the manifest lists them, signed."""
    if holds_bundle_name(manifest):
        raise JobFailed(
            f"{manifest.name}@{manifest.version} has a file named {BUNDLE_NAME}, where its OMS bundle belongs: "
            "publish the model again with that file renamed"
        )
    resources = [
        {"algorithm": "sha256", "digest": entry.sha256, "name": entry.path}
        for entry in sorted(manifest.files, key=lambda e: e.path)  # Unicode code point order, as the spec says
    ]
    statement = {
        "_type": dsse.IN_TOTO_STATEMENT,
        "subject": [{"name": manifest.name, "digest": {"sha256": _root_digest(resources)}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "resources": resources,
            "serialization": {
                "method": "files",
                "hash_type": "sha256",
                "allow_symlinks": False,
                "ignore_paths": [BUNDLE_NAME],
            },
        },
    }
    hint = signer.hint
    bundle = {
        "mediaType": MEDIA_TYPE,
        "verificationMaterial": {"publicKey": {"hint": hint}, "tlogEntries": []},
        "dsseEnvelope": dsse.sign_statement(signer, statement),
    }
    return (json.dumps(bundle, indent=1, sort_keys=True) + "\n").encode()


def holds_bundle_name(manifest: Manifest) -> bool:
    """A version published before the name was reserved may have a file of its own there."""
    return any(entry.path == BUNDLE_NAME for entry in manifest.files)


def _root_digest(resources: list[dict]) -> str:
    """The subject digest: sha256 over the resources' raw digests in the order listed."""
    return hashlib.sha256(b"".join(bytes.fromhex(r["digest"]) for r in resources)).hexdigest()


def signed_files(data: bytes | None, verifier: Verifier) -> dict[str, str]:
    """{path: sha256} of an OMS bundle signed by verifier (files method, sha256), else dsse.Refused."""
    what = f"a {BUNDLE_NAME}"
    if data is None:
        raise dsse.Refused(f"no {BUNDLE_NAME}")
    try:
        bundle = json.loads(data)
    except (ValueError, RecursionError):
        bundle = None
    if not isinstance(bundle, dict) or not str(bundle.get("mediaType", "")).startswith(
        "application/vnd.dev.sigstore.bundle"
    ):
        raise dsse.Refused(f"{what} that is not a Sigstore bundle")
    material = bundle.get("verificationMaterial")
    key = material.get("publicKey") if isinstance(material, dict) else None
    if not isinstance(key, dict):
        raise dsse.Refused(f"{what} that is not signed with a key (OMS method key)")
    if "hint" in key and key["hint"] != verifier.hint:
        raise dsse.Refused(f"{what} signed by another key than the trust key {verifier.ref}")
    statement = dsse.open_statement(verifier, bundle.get("dsseEnvelope"), what)
    if statement.get("predicateType") != PREDICATE_TYPE:
        raise dsse.Refused(f"{what} whose predicate is not {PREDICATE_TYPE}")
    predicate = statement.get("predicate")
    predicate = predicate if isinstance(predicate, dict) else {}
    serialization = predicate.get("serialization")
    if not isinstance(serialization, dict) or (serialization.get("method"), serialization.get("hash_type")) != (
        "files",
        "sha256",
    ):
        raise dsse.Refused(f"{what} not made per file with sha256 (sign with serialization method files, sha256)")
    return _resources(statement, predicate.get("resources"), what)


def _resources(statement: dict, resources, what: str) -> dict[str, str]:
    if not isinstance(resources, list) or not resources:
        raise dsse.Refused(f"{what} that lists no files")
    files: dict[str, str] = {}
    for resource in resources:
        name = resource.get("name") if isinstance(resource, dict) else None
        digest = resource.get("digest") if isinstance(resource, dict) else None
        if (
            not isinstance(name, str)
            or resource.get("algorithm") != "sha256"
            or not isinstance(digest, str)
            or len(digest) != 64
            or not _HEX.issuperset(digest)
        ):
            raise dsse.Refused(f"{what} with a file entry that is not a name and a sha256")
        if name in files:
            raise dsse.Refused(f"{what} that lists {name!r} twice")
        files[name] = digest
    subject = statement.get("subject")
    digest = subject[0].get("digest", {}) if isinstance(subject, list) and len(subject) == 1 else None
    if not isinstance(digest, dict) or digest.get("sha256") != _root_digest(resources):
        raise dsse.Refused(f"{what} whose subject digest does not match its file list")
    return files


def files_problem(signed: dict[str, str], wanted: dict[str, str], *, where: str) -> str | None:
    """How the signed file list differs from wanted ({path: sha256}), in one phrase; None when equal."""
    for path in sorted(wanted):
        if path not in signed:
            return f"{where} does not sign {path!r}"
        if signed[path] != wanted[path]:
            return f"{where} signs another sha256 for {path!r}"
    extra = sorted(set(signed) - set(wanted))
    return f"{where} signs {extra[0]!r}, which is not there" if extra else None


def manifest_files(manifest: Manifest) -> dict[str, str]:
    return {entry.path: entry.sha256 for entry in manifest.files}


def bundle_problem(data: bytes | None, verifier: Verifier, manifest: Manifest) -> str | None:
    """Why data is not an OMS bundle by verifier of exactly the manifest's files (None: it is)."""
    try:
        signed = signed_files(data, verifier)
    except dsse.Refused as problem:
        return str(problem)
    return files_problem(signed, manifest_files(manifest), where=f"its {BUNDLE_NAME}")


# In a version directory ------------------------------------------------------------------------


def read_local_bundle(store, name: str, version: str) -> bytes | None:
    """The version directory's model.sig, through the store (a link there is refused), or None."""
    return store.read_version_file(name, version, BUNDLE_NAME, limit=MAX_BUNDLE_BYTES + 1)


def place_bundle(store, name: str, version: str, data: bytes, *, durable: bool) -> None:
    """Write model.sig into the version directory the way its files are written (store.write_whole)."""
    store.write_version_file(name, version, BUNDLE_NAME, data, durable=durable)
