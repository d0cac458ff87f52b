"""`resign`: sign published versions and LATEST again, in the current format, with the signing key.

Only what already verifies with the trust key (the signing key's own public key unless another is given,
e.g. the old key during a rotation) is signed again: a version whose manifest signature, or a LATEST whose
signature, does not verify is refused, never laundered into a valid one. `--latest-only` re-signs LATEST
unchanged (same version, next sequence, fresh signing time) so that readers can require a maximum age; it
refuses a LATEST whose statement is below the highest in the object's history (a LATEST put back from
before), which would otherwise come out fresh.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import freshness
from .config import check_name
from .errors import ModelsyncError
from .keys import Signer, Verifier
from .manifest import list_model_names, list_version_ids, read_latest_version, read_manifest
from .objects import S3Objects
from .publish import put_latest, sign_version
from .trust import latest_problem, published_problem


@dataclass
class Outcome:
    name: str
    what: str  # a version, or "LATEST"
    status: str  # "re-signed", "current" (already in the current format by this key), "refused", "skipped"
    detail: str = ""


def resign(
    client,
    bucket: str,
    prefix: str,
    signer: Signer,
    *,
    trust: Verifier | None = None,
    models: list[str] | None = None,
    latest_only: bool = False,
) -> list[Outcome]:
    trust = trust or signer.verifier()
    outcomes: list[Outcome] = []
    for name in models or list_model_names(client, bucket, prefix):
        check_name(name)
        try:
            outcomes += _resign_model(client, bucket, prefix, name, signer, trust, latest_only)
        except ModelsyncError as exc:  # this model's objects are unreadable: the others go on
            outcomes.append(Outcome(name, "-", "refused", str(exc)))
    return outcomes


def _resign_model(client, bucket, prefix, name, signer: Signer, trust: Verifier, latest_only: bool) -> list[Outcome]:
    outcomes, verified = [], {}
    latest_version = read_latest_version(client, bucket, name, prefix=prefix)
    versions = [latest_version] if latest_only else list_version_ids(client, bucket, prefix, name)
    for version in versions:
        if version is None:
            continue
        manifest = read_manifest(client, bucket, name, version, prefix=prefix)
        if manifest is None:
            outcomes.append(Outcome(name, version, "skipped", "no manifest (a publish in progress, or a staged part)"))
            continue
        problem = published_problem(client, bucket, prefix, manifest, trust, latest=False)
        if problem:
            outcomes.append(Outcome(name, version, "refused", f"{problem}: publish it again with the signing key"))
            continue
        verified[version] = manifest
        if latest_only:
            continue
        if published_problem(client, bucket, prefix, manifest, signer.verifier(), latest=False, current=True):
            sign_version(client, bucket, prefix, manifest, signer)
            outcomes.append(Outcome(name, version, "re-signed"))
        else:
            outcomes.append(Outcome(name, version, "current"))
    if latest_version is not None:
        outcomes.append(
            _resign_latest(client, bucket, prefix, name, verified.get(latest_version), signer, trust, latest_only)
        )
    return outcomes


def _resign_latest(client, bucket, prefix, name, manifest, signer: Signer, trust: Verifier, latest_only: bool):
    if manifest is None:
        return Outcome(name, "LATEST", "refused", "its version was refused above")
    problem = latest_problem(client, bucket, prefix, manifest, trust, current=False)
    if problem:
        return Outcome(name, "LATEST", "refused", f"{problem}: publish the model again with the signing key")
    repo = freshness.repository(bucket, prefix)
    highest = freshness.highest_in_history(client, bucket, prefix, name, trust, repo)
    current = freshness.ours(freshness.read_object(S3Objects(client, bucket, prefix), name), trust, repo)
    if latest_only and highest is not None and (current is None or current.sequence < highest.sequence):
        return Outcome(
            name,
            "LATEST",
            "refused",
            f"it names {name}@{manifest.version} "
            + (f"at sequence {current.sequence}" if current else "without a sequence")
            + f", below {highest.label} in its history: an older LATEST was put back; restore the newest "
            "(docs/runbook.md, LATEST refused)",
        )
    if latest_only or latest_problem(client, bucket, prefix, manifest, signer.verifier(), current=True):
        put_latest(client, bucket, prefix, manifest, signer, after=highest)
        return Outcome(name, "LATEST", "re-signed", f"{name}@{manifest.version}")
    return Outcome(name, "LATEST", "current", f"{name}@{manifest.version}")
