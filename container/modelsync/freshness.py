"""The signed LATEST statement: which version is current, for which repository, in which order, since when
(docs/contracts.md, "Signatures"); and the newest one a store has accepted, kept per model.

The statement (an in-toto statement in a DSSE envelope, LATEST's `statement` member) binds the model's
name, the manifest's sha256, the version, the repository (`s3://BUCKET/PREFIX`), a per-model sequence
the publisher increments and the signing time. A reader refuses a statement for another repository, one
whose sequence is below the newest this store accepted (a rollback), and, with a maximum age, an old one.

The store keeps the newest statement it switched a model to, whole, in
`<dest>/.modelsync/latest/<name>.json` (the high-water mark; `verify` checks it again).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from . import dsse
from .keys import Signer, Verifier
from .manifest import MAX_LATEST_BYTES, Manifest, latest_key
from .objects import Objects
from .signing import parse_json_object

PREDICATE_TYPE = "https://modelsync/latest/v1"
MAX_SEQUENCE = 2**53 - 1  # exact in every JSON reader
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
_DURATION = re.compile(r"(\d+)([smhd]?)")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def repository(bucket: str, prefix: str) -> str:
    return f"s3://{bucket}/{prefix}"


@dataclass(frozen=True)
class Latest:
    """What a verified LATEST statement says."""

    name: str
    version: str
    manifest_sha256: str
    repository: str
    sequence: int
    signed_at: datetime

    @property
    def label(self) -> str:
        return f"{self.name}@{self.version} (sequence {self.sequence}, signed {self.signed_at:{_TIME_FORMAT}})"


def make_statement(signer: Signer, repo: str, manifest: Manifest, sequence: int, digest: str) -> dict:
    statement = {
        "_type": dsse.IN_TOTO_STATEMENT,
        "subject": [{"name": manifest.name, "digest": {"sha256": digest}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "repository": repo,
            "version": manifest.version,
            "sequence": sequence,
            "signed_at": datetime.now(UTC).strftime(_TIME_FORMAT),
        },
    }
    return dsse.sign_statement(signer, statement, keyid=signer.hint)


def open_latest(verifier: Verifier, envelope) -> Latest:
    """The Latest of a statement envelope signed by verifier, else dsse.Refused."""
    what = "a LATEST statement"
    statement = dsse.open_statement(verifier, envelope, what)
    predicate, subject = statement.get("predicate"), statement.get("subject")
    if statement.get("predicateType") != PREDICATE_TYPE or not isinstance(predicate, dict):
        raise dsse.Refused(f"{what} whose predicate is not {PREDICATE_TYPE}")
    first = subject[0] if isinstance(subject, list) and len(subject) == 1 and isinstance(subject[0], dict) else {}
    digest = first.get("digest")
    digest = digest if isinstance(digest, dict) else {}
    sequence, signed_at = predicate.get("sequence"), predicate.get("signed_at")
    fields = (first.get("name"), predicate.get("version"), digest.get("sha256"), predicate.get("repository"))
    if not all(isinstance(f, str) for f in fields) or type(sequence) is not int or not 1 <= sequence <= MAX_SEQUENCE:
        raise dsse.Refused(f"{what} without name, version, digest, repository and sequence")
    try:
        when = datetime.strptime(str(signed_at), _TIME_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        raise dsse.Refused(f"{what} without a signing time") from None
    return Latest(*fields, sequence=sequence, signed_at=when)  # type: ignore[arg-type]


# The LATEST object ---------------------------------------------------------------------------------


def read_object(objects: Objects, name: str) -> dict | None:
    key = latest_key(objects.prefix, name)
    return parse_json_object(objects.read(key, max_bytes=MAX_LATEST_BYTES, what="LATEST pointer"))


def ours(data: dict | None, verifier: Verifier, repo: str) -> Latest | None:
    """The statement of a LATEST object when it is signed by verifier for repo, else None."""
    try:
        latest = open_latest(verifier, (data or {}).get("statement"))
    except dsse.Refused:
        return None
    return latest if latest.repository == repo else None


def next_sequence(highest: Latest | None) -> int:
    """One more than the highest statement known (1: none; an unsigned or older-format LATEST counts as none)."""
    if highest is None:
        return 1
    if highest.sequence >= MAX_SEQUENCE:
        raise dsse.Refused(f"a LATEST statement at the largest sequence ({MAX_SEQUENCE})")
    return highest.sequence + 1


MAX_HISTORY = 1000  # object versions of one LATEST read at most (30 days of daily refreshes and publishes)


def highest_in_history(client, bucket: str, prefix: str, name: str, verifier: Verifier, repo: str) -> Latest | None:
    """The highest statement among the LATEST object's versions (bucket versioning keeps every overwrite):
    what a signer continues from, and what a LATEST put back from before must not hide. Needs
    s3:ListBucketVersions and s3:GetObjectVersion; an unversioned bucket has only the current object."""
    import botocore.exceptions as bx

    from .s3 import translate_client_error

    key = latest_key(prefix, name)
    highest: Latest | None = None
    try:
        pages = client.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=key)
        versions = [v for page in pages for v in page.get("Versions", []) if v["Key"] == key][:MAX_HISTORY]
        for entry in versions:
            response = client.get_object(
                Bucket=bucket, Key=key, VersionId=entry["VersionId"], Range=f"bytes=0-{MAX_LATEST_BYTES}"
            )
            latest = ours(parse_json_object(response["Body"].read(MAX_LATEST_BYTES + 1)), verifier, repo)
            if latest is not None and (highest is None or latest.sequence > highest.sequence):
                highest = latest
    except (bx.ClientError, bx.BotoCoreError) as exc:
        raise translate_client_error(exc, bucket=bucket, key=key) from None
    return highest


# Freshness -----------------------------------------------------------------------------------------


def parse_age(raw: str, *, minimum: int = 1, example: str = "36h, 7d or 3600 (seconds)") -> int:
    """--max-latest-age (and --wait-for-files, minimum 0): seconds, or a number with s, m, h or d (ValueError
    says how to write it)."""
    match = _DURATION.fullmatch(str(raw).strip().lower())
    if not match or int(match.group(1)) < minimum:
        raise ValueError(f"is not a duration: use e.g. {example}")
    return int(match.group(1)) * _UNITS[match.group(2)]


def age_text(seconds: float) -> str:
    seconds = max(0, int(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}".replace(".0", "")
    return f"{seconds}s"


def freshness_problem(latest: Latest, kept: Latest | None, *, repo: str | None, max_age: int | None) -> str | None:
    """Why this LATEST must not be followed by a store that accepted `kept` (None: it may)."""
    if repo is not None and latest.repository != repo:
        return f"names {latest.label} for the repository {latest.repository}, not {repo} (copied from there?)"
    if kept is not None and (
        latest.sequence < kept.sequence or (latest.sequence == kept.sequence and latest.version != kept.version)
    ):
        return f"names {latest.label}, older than {kept.label} which this store accepted (a rollback?)"
    if max_age is not None:
        age = (datetime.now(UTC) - latest.signed_at).total_seconds()
        if age > max_age:
            return (
                f"names {latest.label}, {age_text(age)} old, more than the maximum age {age_text(max_age)} "
                "(MODELSYNC_MAX_LATEST_AGE): re-sign it (modelsync resign --latest-only)"
            )
    return None


# The statement a store keeps -----------------------------------------------------------------------


def read_kept(store, name: str) -> dict | None:
    """The LATEST object the store last switched name to (None: none kept), read through the store."""
    return parse_json_object(store.read_latest_file(name, limit=MAX_LATEST_BYTES + 1))


def kept_latest(store, name: str, verifier: Verifier) -> Latest | None:
    """The kept statement, verified (an unreadable or foreign one counts as none)."""
    try:
        return open_latest(verifier, (read_kept(store, name) or {}).get("statement"))
    except dsse.Refused:
        return None


def keep(store, name: str, data: dict) -> None:
    store.write_latest_file(name, json.dumps(data, sort_keys=True).encode())
