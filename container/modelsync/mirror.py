"""The EFS mirror step of the seeding and signing tasks: bring the mirror to each model's LATEST and keep
the service's pinned versions present in it (docs/seeding.md). `seed` (signing in one step) and `sign`
run it after they moved LATEST."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from .config import DEFAULT_DOWNLOAD_ATTEMPTS
from .errors import JobFailed, ModelsyncError, PullFailed
from .keys import Verifier
from .manifest import read_latest_version
from .progress import Progress, human_bytes
from .pull import PullResult, pull
from .stop import Stopped

log = logging.getLogger(__name__)
# Pull rounds before giving up on a LATEST that keeps moving (other seeds publishing).
MIRROR_ROUNDS = 3


@dataclass
class MirrorOutcome:
    root: str
    ok: bool
    files: int = 0
    bytes: int = 0
    skipped_files: int = 0
    seconds: float = 0.0
    error: str | None = None
    versions: dict[str, str] = field(default_factory=dict)  # model -> version the mirror was brought to
    pins: list[str] = field(default_factory=list)  # NAME@VERSION kept present for the service (not linked)
    stopped: Stopped | None = None

    def add(self, result: PullResult | None, *, linked: bool = True) -> None:
        if result is None:
            return
        self.files += result.downloaded_files
        self.bytes += result.downloaded_bytes
        self.skipped_files += result.skipped_files
        if linked:
            self.versions.update((m.name, m.version) for m in result.models)


@dataclass
class Mirror:
    """Where from, and how: the same transfer settings and trust key as the step that runs it."""

    client: object
    bucket: str
    prefix: str
    concurrency: int = 16
    part_size: int | None = None
    download_attempts: int = DEFAULT_DOWNLOAD_ATTEMPTS
    progress: Progress | None = None
    trust: Verifier | None = None

    def run(self, efs_root: str, names: list[str], pins: tuple[str, ...] = ()) -> MirrorOutcome:
        """Bring the mirror to each model's LATEST as read now, not the version the caller saw: another
        seed may have published a newer one since, and its own mirror step may already be done. The
        service's pinned versions (NAME@VERSION) are made present too, without moving the links: tasks
        in efs mode link those version directories directly."""
        outcome = MirrorOutcome(root=efs_root, ok=True)
        if not names and not pins:
            return outcome
        started = time.monotonic()
        try:
            if pins:
                outcome.add(self._pull(efs_root, list(pins), switch=False), linked=False)
                outcome.pins = list(pins)
            self._mirror_latest(efs_root, names, outcome)
        except ModelsyncError as err:  # JobFailed included: the other models were still pulled
            outcome.ok, outcome.error = False, str(err)
        except Stopped as stop:  # the mirror keeps its previous versions linked
            outcome.ok, outcome.error, outcome.stopped = False, f"{stop}: run it again to finish", stop
        except Exception as err:  # the summary must still be printed
            log.error("EFS mirror: unexpected failure", exc_info=True)
            outcome.ok, outcome.error = False, unexpected(err)
        outcome.seconds = time.monotonic() - started
        return outcome

    def _pull(self, efs_root: str, models: list[str], *, switch: bool = True) -> PullResult:
        return pull(
            self.client,
            self.bucket,
            efs_root,
            models,
            prefix=self.prefix,
            concurrency=self.concurrency,
            progress=self.progress,
            part_size=self.part_size,
            download_attempts=self.download_attempts,
            switch=switch,
            trust=self.trust,
        )

    def _mirror_latest(self, efs_root: str, names: list[str], outcome: MirrorOutcome) -> None:
        pending = names
        if not pending:
            return
        for _ in range(MIRROR_ROUNDS):
            try:
                result = self._pull(efs_root, pending)
            except PullFailed as err:  # the models that were pulled still count
                outcome.add(err.result)
                raise
            outcome.add(result)
            # The pull resolved LATEST before it switched: a seed that published and mirrored in between
            # may have been overtaken by our older switch. Whoever switches last re-checks, so the mirror
            # cannot end behind LATEST.
            pending = [
                name
                for name in pending
                if read_latest_version(self.client, self.bucket, name, prefix=self.prefix) != outcome.versions[name]
            ]
            if not pending:
                return
            log.info("EFS mirror: LATEST of %s moved while mirroring; pulling again", ", ".join(pending))
        raise JobFailed(
            f"LATEST of {', '.join(pending)} kept changing while the EFS mirror was brought up to date "
            f"(another seed or publish is running): re-run the seed when it has finished"
        )


def mirror_lines(mirror: MirrorOutcome, seen: dict[str, str]) -> list[str]:
    """The mirror's lines of a run's summary; seen: model -> the version this run published or signed."""
    state = "ok" if mirror.ok else "FAILED"
    lines = [
        f"EFS mirror {mirror.root}: {state}, {mirror.files} files ({human_bytes(mirror.bytes)}) copied, "
        f"{mirror.skipped_files} already in place, {mirror.seconds:.1f} s"
    ]
    if mirror.pins:
        lines.append(f"EFS mirror keeps the service's pinned versions: {', '.join(mirror.pins)}")
    lines += [
        f"EFS mirror has {name} at {mirror.versions[name]}, the LATEST published after this run saw {version} "
        "(another seed or publish)"
        for name, version in seen.items()
        if name in mirror.versions and mirror.versions[name] != version
    ]
    return lines


def unexpected(err: Exception) -> str:
    """One line for a failure nobody foresaw (the traceback goes to the log)."""
    return (
        f"unexpected {type(err).__name__}: {' '.join(str(err).split())}; re-run the seed, and report it if it persists"
    )
