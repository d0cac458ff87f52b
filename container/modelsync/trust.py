"""What a trust key requires of what modelsync reads (docs/runtime.md, "Signed manifests").

A version: a manifest signature by the trust key (signing.py) and, when the version has one, an OMS
bundle by that key listing exactly the manifest's files (oms.py). A model followed through LATEST: a
LATEST signed for that version and manifest; in the current format also for this repository, not older
than what this store accepted, and not older than a maximum age when one is set (freshness.py).
Older-format LATESTs (no statement) are accepted only where nothing newer was seen and no age is asked.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import dsse, freshness, oms
from .errors import JobFailed, ModelsyncError
from .keys import Verifier
from .manifest import Manifest, latest_key, manifest_key
from .objects import Objects, S3Objects
from .signing import (
    envelope_problem,
    manifest_digest,
    read_envelope,
    read_local_envelope,
    refused,
    signature_key,
    write_local_envelope,
)


def read_bundle(objects: Objects, name: str, version: str) -> bytes | None:
    key = oms.bundle_key(objects.prefix, name, version)
    return objects.read(key, max_bytes=oms.MAX_BUNDLE_BYTES, what="OMS bundle")


def latest_refused(where: str, problem: str, name: str, current: str | None) -> JobFailed:
    return JobFailed(
        f"LATEST refused: {where} {problem}; {name} stays at {current or 'nothing'} (docs/runbook.md, LATEST refused)"
    )


def statement_problem(latest: freshness.Latest, name: str, version: str, digest: str) -> str | None:
    if (latest.name, latest.version, latest.manifest_sha256) != (name, version, digest):
        return f"a LATEST statement for {latest.name}@{latest.version} or another manifest, not {name}@{version}"
    return None


@dataclass
class Accepted:
    """What a trusted pull checked and keeps: the manifest signatures (beside the records), the verified
    OMS bundles a version directory lacks, and per model the LATEST object it follows (once switched)."""

    verifier: Verifier
    envelopes: list[tuple[str, str, dict]] = field(default_factory=list)
    bundles: dict[tuple[str, str], bytes] = field(default_factory=dict)
    latest: dict[str, tuple[dict, freshness.Latest]] = field(default_factory=dict)
    where: dict[str, str] = field(default_factory=dict)  # model -> its LATEST's s3:// location

    def keep_envelopes(self, store) -> None:
        for name, version, envelope in self.envelopes:
            write_local_envelope(store, name, version, envelope)

    def recheck(self, store, name: str) -> None:
        """Under the model's lock, before switching: another pull may have accepted a newer LATEST meanwhile."""
        if name not in self.latest:
            return
        latest = self.latest[name][1]
        problem = freshness.freshness_problem(
            latest, freshness.kept_latest(store, name, self.verifier), repo=None, max_age=None
        )
        if problem:
            raise latest_refused(self.where[name], problem, name, _current(store, name))

    def keep_latest(self, store, name: str) -> None:
        """After the switch: the statement becomes the store's high-water mark unless a newer one is kept."""
        if name not in self.latest:
            return
        data, latest = self.latest[name]
        kept = freshness.kept_latest(store, name, self.verifier)
        if kept is None or (latest.sequence, latest.signed_at) > (kept.sequence, kept.signed_at):
            freshness.keep(store, name, data)


def check_pull_targets(objects: Objects, store, targets, verifier: Verifier, *, max_age: int | None = None) -> Accepted:
    """Refuse (JobFailed, before anything is downloaded or switched) any target not signed as the module
    docstring says. objects: the bucket, or the mounted tree (objects.py); store: the local store whose
    copies and kept LATESTs count, or None (the tree has no local copies). Reads the store, never writes it
    (pull --dry-run)."""
    accepted = Accepted(verifier)
    prefix = objects.prefix
    for target in targets:
        name, version = target.name, target.version
        manifest: Manifest = target.content()
        digest = manifest_digest(manifest)
        local_copies = store is not None and target.record is not None
        envelope = read_local_envelope(store, name, version) if local_copies else None
        if envelope_problem(verifier, envelope, "manifest", name, version, digest) is not None:
            envelope = read_envelope(objects, name, version)
        problem = envelope_problem(verifier, envelope, "manifest", name, version, digest)
        if problem or envelope is None:
            raise refused(objects.where(manifest_key(prefix, name, version)), problem or "no signature")
        accepted.envelopes.append((name, version, envelope))
        local = oms.read_local_bundle(store, name, version) if local_copies else None
        if local is None or oms.bundle_problem(local, verifier, manifest) is not None:
            data = read_bundle(objects, name, version)
            if data is not None:  # versions signed before OMS bundles have none
                problem = oms.bundle_problem(data, verifier, manifest)
                if problem:
                    raise refused(objects.where(oms.bundle_key(prefix, name, version)), problem)
                accepted.bundles[(name, version)] = data
        if target.latest:
            _check_latest(objects, store, target, digest, accepted, max_age)
    return accepted


def _check_latest(objects: Objects, store, target, digest: str, accepted: Accepted, max_age) -> None:
    name, version, verifier = target.name, target.version, accepted.verifier
    where = objects.where(latest_key(objects.prefix, name))
    data = freshness.read_object(objects, name) or {}
    if data.get("version") != version:
        raise JobFailed(f"{where} moved from {version} to {data.get('version')} while it was checked: run again")
    kept = freshness.kept_latest(store, name, verifier) if store is not None else None
    if "statement" not in data:  # the older format: no repository, sequence or time to check
        problem = envelope_problem(verifier, data.get("signature"), "latest", name, version, digest)
        if problem:
            raise refused(f"{where} (-> {version})", problem)
        if kept is not None:
            problem = f"names {name}@{version} without a sequence (older format), older than {kept.label}"
        elif max_age is not None:
            problem = f"names {name}@{version} without a signing time (older format), so its age is unknown"
        if problem:
            raise latest_refused(where, problem, name, _current(store, name))
        return
    try:
        latest = freshness.open_latest(verifier, data["statement"])
    except dsse.Refused as exc:
        raise refused(f"{where} (-> {version})", str(exc)) from None
    problem = statement_problem(latest, name, version, digest)
    if problem:
        raise refused(f"{where} (-> {version})", problem)
    problem = freshness.freshness_problem(latest, kept, repo=objects.repository, max_age=max_age)
    if problem:
        raise latest_refused(where, problem, name, _current(store, name))
    accepted.latest[name] = (data, latest)
    accepted.where[name] = where


def _current(store, name: str) -> str | None:
    if store is None:
        return None
    try:
        return store.current_version(name)
    except ModelsyncError:  # a real directory where the link belongs: pull reports that itself
        return None


# verify --trust-key -------------------------------------------------------------------------------


def record_problem(store, record, verifier: Verifier) -> str | None:
    """The local record's manifest must carry a signature by the trust key, and the version directory's
    model.sig, when there is one, must be that key's bundle of exactly these files."""
    name, version = record.manifest.name, record.manifest.version
    envelope = read_local_envelope(store, name, version)
    problem = envelope_problem(verifier, envelope, "manifest", name, version, manifest_digest(record.manifest))
    if problem is None:
        bundle = oms.read_local_bundle(store, name, version)
        problem = None if bundle is None else oms.bundle_problem(bundle, verifier, record.manifest)
    if problem is None:
        return None
    return (
        f"{name}@{version}: signature refused: the local record has {problem}: pull it again with the trust "
        "key (modelsync pull --trust-key) or seed the mirror with signing on (docs/runbook.md)"
    )


def kept_latest_problem(
    store, name: str, record, verifier: Verifier, *, repo: str | None, max_age: int | None
) -> str | None:
    """verify --trust-key of a model checked through its link: the LATEST the store keeps for it must be
    signed for the linked version, for repo (when given) and, with max_age, fresh enough."""
    version = record.manifest.version
    data = freshness.read_kept(store, name)
    if data is None:
        if max_age is None:
            return None  # pulled before LATEST statements, or only pinned versions: nothing to compare
        return (
            f"{name}: LATEST refused: {store.dest} keeps no signed LATEST statement for it, so its age is "
            f"unknown; pull {name} again with the trust key (docs/runbook.md, LATEST refused)"
        )
    try:
        latest = freshness.open_latest(verifier, data.get("statement"))
    except dsse.Refused as exc:
        return f"{name}: LATEST refused: the LATEST kept in {store.dest} has {exc}; pull {name} again"
    if latest.version != version:
        return (
            f"{name}: LATEST refused: {name} is at {version}, but this store accepted {latest.label}: pull {name} "
            f"again, or verify {name}@{version} to check a pinned version"
        )
    problem = statement_problem(latest, name, version, manifest_digest(record.manifest))
    if problem is None:
        problem = freshness.freshness_problem(latest, None, repo=repo, max_age=max_age)
    if problem:
        return f"{name}: LATEST refused: the LATEST kept in {store.dest} {problem}; {name} is at {version}"
    return None


# What the bucket has published -----------------------------------------------------------------------


def published_problem(
    client, bucket: str, prefix: str, manifest: Manifest, verifier: Verifier, *, latest: bool, current: bool = False
) -> str | None:
    """Is this published manifest (and LATEST, when latest) signed by verifier? None when it is.
    current: also require the current format (an OMS bundle, a LATEST statement), as publish does
    before it calls a version signed."""
    name, version = manifest.name, manifest.version
    problem = manifest_problem(client, bucket, prefix, manifest, verifier)
    if problem:
        return problem
    bundle = read_bundle(S3Objects(client, bucket, prefix), name, version)
    if bundle is not None or current:
        problem = oms.bundle_problem(bundle, verifier, manifest)
        if problem:
            return f"s3://{bucket}/{oms.bundle_key(prefix, name, version)}: {problem}"
    if latest:
        return latest_problem(client, bucket, prefix, manifest, verifier, current=current)
    return None


def manifest_problem(client, bucket: str, prefix: str, manifest: Manifest, verifier: Verifier) -> str | None:
    name, version = manifest.name, manifest.version
    envelope = read_envelope(S3Objects(client, bucket, prefix), name, version)
    problem = envelope_problem(verifier, envelope, "manifest", name, version, manifest_digest(manifest))
    return f"s3://{bucket}/{signature_key(prefix, name, version)}: {problem}" if problem else None


def latest_problem(client, bucket: str, prefix: str, manifest: Manifest, verifier: Verifier, *, current: bool):
    name, version, digest = manifest.name, manifest.version, manifest_digest(manifest)
    where = f"s3://{bucket}/{latest_key(prefix, name)}"
    data = freshness.read_object(S3Objects(client, bucket, prefix), name) or {}
    if data.get("version") != version:
        return f"{where}: another version"
    if "statement" not in data or current:  # the older format, which older readers still check
        problem = envelope_problem(verifier, data.get("signature"), "latest", name, version, digest)
        if problem or not current:
            return f"{where}: {problem}" if problem else None
    try:
        opened = freshness.open_latest(verifier, data.get("statement"))
    except dsse.Refused as exc:
        return f"{where}: {exc}"
    problem = statement_problem(opened, name, version, digest)
    repo = freshness.repository(bucket, prefix)
    if problem is None and opened.repository != repo:
        problem = f"a LATEST statement for the repository {opened.repository}, not {repo}"
    return f"{where}: {problem}" if problem else None
