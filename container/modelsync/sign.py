"""`sign`: the signing step. It holds the signing key, and nothing else that runs here parses archives or
downloads models (docs/runtime.md, "Signed manifests").

For each staged version (staging.py): check that the manifest names its own content (the version is the
hash of its file list), re-hash every file from the bucket by streaming it (sha256 and size against the
manifest; nothing missing, nothing extra), then write the signatures (manifest envelope and OMS bundle),
move LATEST with the next sequence and remove the staging pointer. Then the EFS mirror step (mirror.py).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from . import freshness
from .errors import JobFailed, ModelsyncError
from .keys import Signer
from .manifest import (
    Manifest,
    content_version,
    list_model_names,
    read_latest_version,
    read_manifest,
    version_prefix,
)
from .mirror import MirrorOutcome, unexpected
from .progress import Progress, or_silent
from .publish import put_latest, sign_version
from .s3 import list_keys, object_sha256
from .staging import clear_staged, read_staged
from .stop import Stopped


class Refused(JobFailed):
    """The staged version is not what its manifest says: nothing is signed."""


@dataclass
class Signed:
    name: str
    status: str  # "signed", "refused" (re-hash or manifest mismatch), "failed" (S3, KMS), "none" (nothing staged)
    version: str | None = None
    files: int = 0
    bytes: int = 0
    seconds: float = 0.0
    error: str | None = None


@dataclass
class SignReport:
    models: list[Signed] = field(default_factory=list)
    mirror: MirrorOutcome | None = None
    stopped: Stopped | None = None

    @property
    def failed(self) -> bool:
        return any(m.status in ("refused", "failed") for m in self.models) or (
            self.mirror is not None and not self.mirror.ok
        )


def sign_staged(
    client,
    bucket: str,
    prefix: str,
    signer: Signer,
    *,
    only: list[str] | None = None,
    concurrency: int = 16,
    progress: Progress | None = None,
) -> SignReport:
    report = SignReport()
    for name in only or list_model_names(client, bucket, prefix):
        started = time.monotonic()
        outcome = Signed(name, "failed")
        try:
            version = read_staged(client, bucket, prefix, name)
            if version is None:
                outcome.status = "none"
            else:
                outcome.version = version
                _sign_one(client, bucket, prefix, name, version, signer, concurrency, progress, outcome)
        except Stopped as exc:  # nothing is half-signed: the pointer stays, the next run signs it
            outcome.error, report.stopped = f"{exc} while signing it: run sign again", exc
            report.models.append(outcome)
            return report
        except Refused as exc:
            outcome.status, outcome.error = "refused", str(exc)
        except ModelsyncError as exc:
            outcome.error = str(exc)
        except Exception as exc:  # a bug or an unforeseen failure: still sign the other models
            outcome.error = unexpected(exc)
        outcome.seconds = time.monotonic() - started
        report.models.append(outcome)
    return report


def _sign_one(client, bucket, prefix, name, version, signer: Signer, concurrency, progress, outcome: Signed) -> None:
    manifest = read_manifest(client, bucket, name, version, prefix=prefix)
    if manifest is None:
        raise Refused(f"the staged version {name}@{version} has no manifest: run the seed again")
    if content_version(manifest.files) != version:
        raise Refused(f"the manifest of the staged {name}@{version} lists other files than its version names")
    outcome.files, outcome.bytes = len(manifest.files), manifest.total_bytes
    rehash(client, bucket, prefix, manifest, concurrency=concurrency, progress=progress)
    sign_version(client, bucket, prefix, manifest, signer)
    repo = freshness.repository(bucket, prefix)
    highest = freshness.highest_in_history(client, bucket, prefix, name, signer.verifier(), repo)
    put_latest(client, bucket, prefix, manifest, signer, after=highest)
    clear_staged(client, bucket, prefix, name, version)
    outcome.status = "signed"


def rehash(client, bucket: str, prefix: str, manifest: Manifest, *, concurrency: int, progress=None) -> None:
    """Refused (one line) unless the objects under the version's files/ are exactly the manifest's files,
    each of its size and sha256, read back whole from the bucket."""
    base = version_prefix(prefix, manifest.name, manifest.version) + "files/"
    where = f"s3://{bucket}/{base}"
    listed = {obj["Key"][len(base) :]: obj["Size"] for obj in list_keys(client, bucket, base)}
    wanted = {entry.path: entry for entry in manifest.files}
    for path in sorted(wanted):
        if path not in listed:
            raise Refused(f"{where}{path} is missing: refused to sign {manifest.name}@{manifest.version}")
        if listed[path] != wanted[path].size:
            raise Refused(
                f"{where}{path} has {listed[path]} bytes, the manifest says {wanted[path].size}: refused to sign "
                f"{manifest.name}@{manifest.version}"
            )
    extra = sorted(set(listed) - set(wanted))
    if extra:
        raise Refused(f"{where}{extra[0]} is not in the manifest: refused to sign {manifest.name}@{manifest.version}")
    progress = or_silent(progress)
    progress.begin(f"{manifest.name}@{manifest.version} re-hash", manifest.total_bytes, model=manifest.name)

    def one(path: str) -> tuple[str, str, int]:
        digest, size = object_sha256(client, bucket, base + path, on_chunk=progress.advance)
        return path, digest, size

    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        for path, digest, size in pool.map(one, sorted(wanted, key=lambda p: -wanted[p].size)):
            if (digest, size) != (wanted[path].sha256, wanted[path].size):
                raise Refused(
                    f"{where}{path} has sha256 {digest[:12]}... ({size} bytes), the manifest says "
                    f"{wanted[path].sha256[:12]}... ({wanted[path].size} bytes): refused to sign "
                    f"{manifest.name}@{manifest.version}"
                )
    progress.end(model=manifest.name)


def mirrored_models(client, bucket: str, prefix: str, only: list[str] | None) -> list[str]:
    """The models the mirror follows: every one (or --only) that has a LATEST."""
    names = only or list_model_names(client, bucket, prefix)
    return [name for name in names if read_latest_version(client, bucket, name, prefix=prefix) is not None]


def format_report(report: SignReport) -> str:
    """The closing table: one row per model with something staged, the EFS mirror, then each failure in full."""
    from .mirror import mirror_lines
    from .progress import human_bytes
    from .table import format_table

    shown = [m for m in report.models if m.status != "none"]
    header = ("MODEL", "STATUS", "VERSION", "FILES", "SIZE", "SECONDS")
    rows = [header] + [
        (m.name, m.status, m.version or "-", str(m.files), human_bytes(m.bytes), f"{m.seconds:.1f}") for m in shown
    ]
    lines = format_table(rows, right=frozenset({3, 5})) if shown else ["nothing staged"]
    if report.mirror is not None:
        lines += mirror_lines(report.mirror, {m.name: m.version for m in shown if m.status == "signed" and m.version})
    counts = {s: sum(m.status == s for m in report.models) for s in ("signed", "refused", "failed")}
    lines.append(
        f"sign: {counts['signed']} signed, {counts['refused']} refused, {counts['failed']} failed"
        + (" - EFS mirror failed" if report.mirror is not None and not report.mirror.ok else "")
    )
    lines += [f"FAILED {m.name}: {m.error}" for m in report.models if m.error]
    if report.mirror is not None and not report.mirror.ok:
        lines.append(f"FAILED EFS mirror: {report.mirror.error}")
    return "\n".join(lines)
