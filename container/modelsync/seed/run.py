"""The seeding run: for each selected catalog entry fetch, check and publish it; then bring the
EFS mirror to each model's LATEST; report one row per model. Without a signing key a model is only
staged (files and manifest, no LATEST, no mirror): the signing step, `modelsync sign`, which holds the
key, re-hashes, signs and publishes it, so archive parsing and downloads never run where kms:Sign is.

One model failing never stops the others: every model that succeeds is published, and the run
reports failure only at the end. Idempotent: a model whose LATEST manifest records the same
source (same Zenodo md5, same sha256, same PaddleOCR settings) is skipped before anything is
downloaded, so a second run transfers nothing.
"""

from __future__ import annotations

import logging
import re
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import botocore.exceptions as bx

from modelsync.config import DEFAULT_DOWNLOAD_ATTEMPTS
from modelsync.errors import ModelsyncError
from modelsync.hashing import sha256_file
from modelsync.keys import Signer, Verifier
from modelsync.manifest import read_latest
from modelsync.mirror import Mirror, MirrorOutcome, mirror_lines, unexpected
from modelsync.progress import Progress, human_bytes, or_silent
from modelsync.publish import PublishResult, publish_directory
from modelsync.s3 import translate_client_error
from modelsync.seed.catalog import DOWNLOAD_CAP_FACTOR, CatalogEntry, HttpsSource, PaddleOCRSource, ZenodoSource
from modelsync.seed.extract import extract_zip, tree_size
from modelsync.seed.fetch import DownloadTooLarge, HttpFetcher
from modelsync.seed.locate import locate_model_dir
from modelsync.seed.paddle import PipelineFactory, prewarm
from modelsync.seed.zenodo import ZenodoClient
from modelsync.stop import Stopped
from modelsync.table import format_table
from modelsync.trust import published_problem

log = logging.getLogger(__name__)
MIB = 1024 * 1024
_SAFE_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,200}")


@dataclass
class ModelOutcome:
    name: str
    status: str  # "published", "staged" (for `modelsync sign`), "unchanged" or "failed"
    version: str | None = None
    size_bytes: int = 0  # the model's files
    downloaded_bytes: int = 0  # from the source (Zenodo, https)
    uploaded_bytes: int = 0  # to the bucket
    seconds: float = 0.0
    error: str | None = None
    archive_sha256: str | None = None  # of the archive downloaded (or recorded when the model was unchanged)
    pin: str | None = None  # the catalog's sha256 pin of the archive, if any


@dataclass
class SeedReport:
    models: list[ModelOutcome] = field(default_factory=list)
    mirror: MirrorOutcome | None = None
    stopped: Stopped | None = None  # SIGTERM/SIGINT: the summary is printed, then the seed exits 128+N

    @property
    def failed(self) -> bool:
        return any(m.status == "failed" for m in self.models) or (self.mirror is not None and not self.mirror.ok)


class Seeder:
    def __init__(
        self,
        client,
        bucket: str,
        *,
        prefix: str,
        workdir: Path,
        zenodo: ZenodoClient,
        fetcher: HttpFetcher | None = None,
        pipeline_factory: PipelineFactory | None = None,
        concurrency: int = 16,
        part_size: int | None = None,
        download_attempts: int = DEFAULT_DOWNLOAD_ATTEMPTS,
        progress: Progress | None = None,
        signer: Signer | None = None,
        trust: Verifier | None = None,
    ):
        """signer: sign what is published; trust: check what the EFS mirror pulls, and the signatures
        the "unchanged" decision relies on (default: the signer's public key)."""
        self.client, self.bucket, self.prefix = client, bucket, prefix
        self.workdir = Path(workdir)
        self.zenodo = zenodo
        self.fetcher = fetcher or zenodo.fetcher
        self.pipeline_factory = pipeline_factory
        self.concurrency, self.part_size, self.download_attempts = concurrency, part_size, download_attempts
        self.progress = progress
        self.signer = signer
        self.trust = trust or (signer.verifier() if signer is not None else None)

    @property
    def stages(self) -> bool:
        """No signing key here: stage each model for the signing step instead of publishing it."""
        return self.signer is None

    def run(
        self, entries: list[CatalogEntry], *, efs_root: str | None = None, mirror_pins: tuple[str, ...] = ()
    ) -> SeedReport:
        if self.stages and (efs_root or mirror_pins):
            raise ModelsyncError(
                "a seed without --signing-key / MODELSYNC_SIGNING_KEY only stages models: the EFS mirror "
                "(--efs-root, --mirror-pins) is brought up to date by `modelsync sign`, which publishes them"
            )
        self._check_bucket()
        report = SeedReport()
        for index, entry in enumerate(entries):
            try:
                outcome = self.seed_one(entry)
            except Stopped as stop:  # every step is safe to abandon; say where it stopped, start nothing more
                report.stopped = stop
                report.models.append(
                    ModelOutcome(
                        entry.name,
                        "failed",
                        error=f"{stop} while seeding it: re-run the seed (what is published stays consistent)",
                    )
                )
                report.models += [
                    ModelOutcome(e.name, "failed", error=f"not started: the seed was {stop}")
                    for e in entries[index + 1 :]
                ]
                return report
            report.models.append(outcome)
            if outcome.status == "failed":
                log.error("%s: failed: %s", entry.name, outcome.error)
            else:
                log.info("%s: %s %s (%.1f s)", entry.name, outcome.status, outcome.version, outcome.seconds)
        if efs_root:
            report.mirror = self.mirror(
                efs_root, [m for m in report.models if m.version and m.status != "failed"], mirror_pins
            )
            if report.mirror.stopped:
                report.stopped = report.mirror.stopped
        return report

    # -- one model ------------------------------------------------------------------------------

    def seed_one(self, entry: CatalogEntry) -> ModelOutcome:
        started = time.monotonic()
        pin = entry.source.sha256 if isinstance(entry.source, (ZenodoSource, HttpsSource)) else None
        outcome = ModelOutcome(entry.name, "failed", pin=pin)
        work = self.workdir / entry.name
        try:
            source = self._source_record(entry)
            latest = read_latest(self.client, self.bucket, entry.name, prefix=self.prefix)
            if latest is not None and _same_source(latest.source, source, outcome.pin) and self._signed(latest):
                outcome.status, outcome.version, outcome.size_bytes = "unchanged", latest.version, latest.total_bytes
                outcome.archive_sha256 = latest.source.get("sha256")
                log.info("%s: %s already published from this source; nothing to do", entry.name, latest.version)
            else:
                shutil.rmtree(work, ignore_errors=True)
                work.mkdir(parents=True)
                folder = self._prepare(entry, work, outcome)
                if isinstance(entry.source, ZenodoSource):  # what the signature now vouches for
                    source = {**source, "sha256": outcome.archive_sha256}
                outcome.size_bytes = tree_size(folder)
                self._warn_if_larger(entry, outcome.size_bytes, "extracted model")
                result: PublishResult = publish_directory(
                    self.client,
                    self.bucket,
                    entry.name,
                    folder,
                    prefix=self.prefix,
                    source=source,
                    concurrency=self.concurrency,
                    progress=self.progress,
                    part_size=self.part_size,
                    signer=self.signer,
                    stage=self.stages,
                )
                outcome.version, outcome.uploaded_bytes = result.version, result.uploaded_bytes
                # "unchanged" only when LATEST already pointed here: bringing LATEST back from a
                # hand-published version to the catalog's one is a change the operator must see.
                moved = latest is None or latest.version != result.version
                changed = moved or not result.unchanged or result.resigned
                outcome.status = "staged" if self.stages else "published" if changed else "unchanged"
        except ModelsyncError as err:
            outcome.error = str(err)
        except Exception as err:  # a bug or an unforeseen failure: still finish the other models
            log.error("%s: unexpected failure", entry.name, exc_info=True)
            outcome.error = unexpected(err)
        finally:
            shutil.rmtree(work, ignore_errors=True)
            outcome.seconds = time.monotonic() - started
        return outcome

    def _signed(self, latest) -> bool:
        """With signing on, "unchanged" relies only on signed content: a manifest or LATEST whose signature
        does not verify (even one that copies the source) is published again, signed."""
        verifier = self.signer.verifier() if self.signer is not None else self.trust  # what publish would check
        if verifier is None:
            return True
        problem = published_problem(self.client, self.bucket, self.prefix, latest, verifier, latest=True)
        if problem:
            log.warning("%s: %s: publishing it again", latest.name, problem)
        return problem is None

    def _source_record(self, entry: CatalogEntry) -> dict:
        """What the manifest records as the source: the catalog identity plus the checksum the
        source publishes. Equal records mean the same bytes, so the model can be skipped."""
        source = entry.source
        if isinstance(source, ZenodoSource):
            zfile = self.zenodo.file(source.record, source.file)
            log.info(
                "%s: Zenodo %s/%s is %s (md5 %s)",
                entry.name,
                source.record,
                source.file,
                human_bytes(zfile.size),
                zfile.md5,
            )
            self._warn_if_larger(entry, zfile.size, "archive")
            return {**source.identity(), "md5": zfile.md5, "size": zfile.size}
        return source.identity()  # https: holds its sha256; paddleocr: version and settings

    def _prepare(self, entry: CatalogEntry, work: Path, outcome: ModelOutcome) -> Path:
        """Fetch and check the model; return the folder to publish (inside `work`)."""
        source = entry.source
        if isinstance(source, PaddleOCRSource):
            return prewarm(source, work / "cache", pipeline_factory=self.pipeline_factory, label=entry.name)
        # Named as at the source, so extraction errors name the archive the operator knows.
        archive = work / (source.file if _SAFE_FILE_NAME.fullmatch(source.file) else "archive.zip")
        progress = or_silent(self.progress)
        cap = entry.download_cap_mb * MIB
        try:
            if isinstance(source, ZenodoSource):
                zfile = self.zenodo.file(source.record, source.file)
                progress.begin(f"{entry.name} download", zfile.size, model=entry.name, source="zenodo")
                outcome.downloaded_bytes = self.zenodo.download(
                    zfile, archive, max_bytes=cap, progress=progress.advance
                )
            elif isinstance(source, HttpsSource):
                progress.begin(f"{entry.name} download", 0, model=entry.name, source="https")
                outcome.downloaded_bytes = self.fetcher.download(
                    source.url,
                    archive,
                    what=f"{entry.name} ({source.url})",
                    algorithm="sha256",
                    expected_digest=source.sha256,
                    max_bytes=cap,
                    progress=progress.advance,
                )
            else:  # pragma: no cover - the catalog parser only builds the three kinds above
                raise ModelsyncError(f"{entry.name}: unsupported source {source!r}")
        except DownloadTooLarge as err:
            rule = "" if entry.max_download_mb else f" = {DOWNLOAD_CAP_FACTOR} x approx_size_mb"
            raise ModelsyncError(
                f"{entry.name}: refused: {err} (max_download_mb: {entry.download_cap_mb}{rule}); "
                f"raise max_download_mb (or approx_size_mb) for this catalog entry if the source "
                f"is trusted"
            ) from None
        progress.end(model=entry.name, downloaded_bytes=outcome.downloaded_bytes)
        outcome.archive_sha256 = source.sha256 if isinstance(source, HttpsSource) else sha256_file(archive)
        if outcome.pin is not None and outcome.archive_sha256 != outcome.pin:
            raise ModelsyncError(
                f"{entry.name}: the archive {source.file} has sha256 {outcome.archive_sha256}, but the catalog "
                f"pins {outcome.pin}: nothing published; if the new archive is the one to serve, pin its sha256 "
                "in the catalog (docs/seeding.md)"
            )
        tree = work / "tree"
        try:
            extract_zip(archive, tree, max_bytes=entry.max_extracted_mb * MIB, max_files=entry.max_extracted_files)
        finally:
            archive.unlink(missing_ok=True)  # halve the peak disk use
        return locate_model_dir(tree, entry.requirements, label=entry.name)

    def _warn_if_larger(self, entry: CatalogEntry, nbytes: int, what: str) -> None:
        if nbytes > entry.approx_size_mb * MIB:
            log.warning(
                "%s: the %s is %s, above the catalog estimate approx_size_mb: %d; raise the estimate "
                "(the service's storage is sized from it)",
                entry.name,
                what,
                human_bytes(nbytes),
                entry.approx_size_mb,
            )

    # -- EFS mirror and preflight ---------------------------------------------------------------

    def mirror(self, efs_root: str, seeded: list[ModelOutcome], pins: tuple[str, ...] = ()) -> MirrorOutcome:
        """The EFS mirror step (mirror.py), with this seed's transfer settings and trust key."""
        return Mirror(
            self.client,
            self.bucket,
            self.prefix,
            concurrency=self.concurrency,
            part_size=self.part_size,
            download_attempts=self.download_attempts,
            progress=self.progress,
            trust=self.trust,
        ).run(efs_root, [m.name for m in seeded], pins)

    def _check_bucket(self) -> None:
        """A missing bucket or missing credentials are configuration errors: stop before any
        download. A listing under the prefix needs no more than publishing does (s3:ListBucket,
        possibly limited to the prefix), unlike HeadBucket."""
        try:
            self.client.list_objects_v2(Bucket=self.bucket, Prefix=self.prefix, MaxKeys=1)
        except (bx.ClientError, bx.BotoCoreError) as err:
            raise translate_client_error(err, bucket=self.bucket) from None


def _same_source(recorded: dict, current: dict, pin: str | None) -> bool:
    """Was LATEST published from this source (same catalog identity and upstream checksum)? A zenodo
    manifest also records the sha256 of the archive the seed downloaded: with a pin it must be the pin.
    A manifest from before that record has none; it still counts, as the seed downloads nothing then."""
    if current.get("type") != "zenodo":
        return recorded == current  # https: the sha256 is the catalog's own; paddleocr: none
    seen = recorded.get("sha256")
    return {k: v for k, v in recorded.items() if k != "sha256"} == current and (pin is None or seen in (None, pin))


def format_report(report: SeedReport) -> str:
    """The closing table: one row per model, the EFS mirror line, then each failure in full."""
    header = ("MODEL", "STATUS", "VERSION", "SIZE", "DOWNLOADED", "UPLOADED", "SECONDS")
    rows = [header] + [
        (
            m.name,
            m.status,
            m.version or "-",
            human_bytes(m.size_bytes) if m.version else "-",
            human_bytes(m.downloaded_bytes),
            human_bytes(m.uploaded_bytes),
            f"{m.seconds:.1f}",
        )
        for m in report.models
    ]
    lines = format_table(rows)
    mirror = report.mirror
    if mirror is not None:
        lines += mirror_lines(mirror, {m.name: m.version for m in report.models if m.version})
    digests = [m for m in report.models if m.archive_sha256]
    if digests:
        lines += format_table(
            [("MODEL", "ARCHIVE SHA256", "PINNED")] + [(m.name, m.archive_sha256 or "", _pin_state(m)) for m in digests]
        )
        lines.append('pin an archive: add sha256: "<ARCHIVE SHA256>" to its source in the catalog (docs/seeding.md)')
    counts = {s: sum(m.status == s for m in report.models) for s in ("published", "unchanged", "failed", "staged")}
    lines.append(
        f"seed: {counts['published']} published, {counts['unchanged']} unchanged, {counts['failed']} failed"
        + (f", {counts['staged']} staged for modelsync sign" if counts["staged"] else "")
        + (" - EFS mirror failed" if mirror is not None and not mirror.ok else "")
    )
    lines += [f"FAILED {m.name}: {m.error}" for m in report.models if m.status == "failed"]
    if mirror is not None and not mirror.ok:
        lines.append(f"FAILED EFS mirror: {mirror.error}")
    return "\n".join(lines)


def _pin_state(outcome: ModelOutcome) -> str:
    if outcome.pin is None:
        return "no"
    return "yes" if outcome.pin == outcome.archive_sha256 else "MISMATCH"


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time (it may be replaced after setup)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


def log_to_stderr() -> None:
    logger = logging.getLogger("modelsync")
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
