"""`pull`: make <dest>/<name> hold exactly one published version, verified, switched atomically."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from . import oms, resume, stop
from .config import (
    DEFAULT_CONCURRENCY,
    DEFAULT_DOWNLOAD_ATTEMPTS,
    DEFAULT_PREFIX,
    default_durable,
    default_part_size,
    parse_model_spec,
)
from .errors import JobFailed, ModelsyncError, PullFailed
from .hashing import sha256_file
from .keys import Verifier
from .manifest import FileEntry, Manifest, file_key, list_model_names, read_latest_version, read_manifest
from .objects import S3Objects
from .progress import Progress, or_silent
from .store import CANNOT_LINK, LocalStore, Record, StatKey, follow_moves, stat_key
from .storefs import Slot, Subdirs, link_refused
from .trust import Accepted, check_pull_targets

if TYPE_CHECKING:
    from .download import Downloader


@dataclass
class ModelPullResult:
    name: str
    version: str
    downloaded_files: int = 0
    downloaded_bytes: int = 0
    skipped_files: int = 0


@dataclass
class PullResult:
    models: list[ModelPullResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def downloaded_files(self) -> int:
        return sum(m.downloaded_files for m in self.models)

    @property
    def downloaded_bytes(self) -> int:
        return sum(m.downloaded_bytes for m in self.models)

    @property
    def skipped_files(self) -> int:
        return sum(m.skipped_files for m in self.models)


@dataclass
class _Target:
    name: str
    version: str
    record: Record | None  # a valid local record of this version, if any
    manifest: Manifest | None  # fetched only when there is no record
    switch: bool = True  # point <dest>/<name> at the version once it is in place
    latest: bool = False  # the version is the model's LATEST (no version was asked for)

    def content(self) -> Manifest:
        """The manifest of this version: the local record's, else the one fetched (_resolve sees to one)."""
        if self.record is not None:
            return self.record.manifest
        if self.manifest is None:
            raise JobFailed(f"{self.name}@{self.version}: no manifest was read for it: pull again")
        return self.manifest


def pull(
    client,
    bucket: str,
    dest,
    models: list[str] | None = None,
    *,
    prefix: str = DEFAULT_PREFIX,
    concurrency: int = DEFAULT_CONCURRENCY,
    progress: Progress | None = None,
    part_size: int | None = None,
    switch: bool = True,
    trust: Verifier | None = None,
    max_latest_age: int | None = None,
    download_attempts: int = DEFAULT_DOWNLOAD_ATTEMPTS,
) -> PullResult:
    """Pull models ("NAME" or "NAME@VERSION"; None = every model at LATEST) into dest.

    trust: refuse, before anything is downloaded or switched, any version not signed by this key, and a
    LATEST for another repository, older than one this store accepted, or (max_latest_age, seconds) too old.
    download_attempts: tries of one byte range whose transfer breaks half-way (botocore's own retries,
    AWS_MAX_ATTEMPTS, cover each request; they do not retry a body that breaks while it is read).
    switch=False only makes each version present and verified (directory and record) without moving
    <dest>/<name>: the seeding task keeps the service's pinned versions in the EFS mirror that way.

    Raises ModelsyncError for a missing model/version/bucket before anything is downloaded, and
    PullFailed (a JobFailed carrying the partial .result) after the other models are done when some
    model failed."""
    started = time.monotonic()
    progress = or_silent(progress)
    store = LocalStore(dest)
    store.ensure()
    store.clean_stale_temps()
    targets = _resolve(
        client,
        bucket,
        prefix,
        store,
        models,
        switch,
        warn=lambda message, key: progress.event("warning", message=message, key=key),
    )
    accepted = None
    if trust is not None:
        accepted = check_pull_targets(S3Objects(client, bucket, prefix), store, targets, trust, max_age=max_latest_age)
        accepted.keep_envelopes(store)
    result = PullResult()
    failures: list[JobFailed] = []
    downloader = _Downloads(
        client=client,
        bucket=bucket,
        concurrency=concurrency,
        part_size=part_size or default_part_size(),
        progress=progress,
        durable=default_durable(),
        attempts=download_attempts,
    )
    try:
        with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="file") as files_pool:
            puller = _Puller(client, bucket, prefix, store, downloader, files_pool, progress, accepted)
            for target in targets:
                try:
                    result.models.append(puller.pull_model(target))
                except JobFailed as exc:
                    failures.append(exc)
                    progress.event("error", model=target.name, message=str(exc))
    finally:
        downloader.close()
    result.seconds = time.monotonic() - started
    if failures:  # -v shows the first failure's chain
        raise PullFailed("; ".join(map(str, failures)), result) from failures[0]
    return result


@dataclass
class PlannedFile:
    """What a pull would do with one file (pull --dry-run)."""

    model: str
    version: str
    path: str
    bytes: int
    action: str  # "download", or "link" (an identical verified file of another local version)


def plan(
    client,
    bucket: str,
    dest,
    models: list[str] | None = None,
    *,
    prefix: str = DEFAULT_PREFIX,
    trust: Verifier | None = None,
    max_latest_age: int | None = None,
    warn=None,
) -> tuple[list[_Target], list[PlannedFile], int]:
    """What pull would download or link, checked like pull checks (names, versions, signatures), but
    writing nothing at all: no directory, temp file, lock or pin. Returns (targets, files, files in place)."""
    store = LocalStore(dest)
    targets = _resolve(client, bucket, prefix, store, models, True, warn=warn)
    if trust is not None:
        check_pull_targets(S3Objects(client, bucket, prefix), store, targets, trust, max_age=max_latest_age)
    planned: list[PlannedFile] = []
    in_place = 0
    for target in targets:
        record = target.record
        if record is not None and not store.stat_mismatches(record):
            in_place += len(record.manifest.files)
            continue
        manifest = target.content()
        trusted = dict(record.stats) if record else {}
        reusable = _LocalCopies(store, target.name, target.version)
        with _existing_tree(store, target.name, target.version) as tree:
            for entry in manifest.files:
                if tree is not None and _in_place(tree, entry, trusted):
                    in_place += 1
                    continue
                action = "link" if (entry.sha256, entry.size) in reusable else "download"
                planned.append(PlannedFile(target.name, target.version, entry.path, entry.size, action))
    return targets, planned, in_place


class _Downloads:
    """The Downloader, created (and botocore imported) only once a file has to be downloaded: a warm
    pull never pays for it."""

    def __init__(self, **kwargs):
        self._kwargs, self._downloader, self._lock = kwargs, None, threading.Lock()

    def get(self) -> Downloader:
        with self._lock:
            if self._downloader is None:
                from .download import Downloader

                self._downloader = Downloader(**self._kwargs)
            return self._downloader

    def close(self) -> None:
        if self._downloader is not None:
            self._downloader.close()


def _resolve(client, bucket, prefix, store: LocalStore, models, switch: bool, *, warn=None) -> list[_Target]:
    """Versions and manifests of every requested model: one small request per model when the
    local record already covers the version, so errors come before any download."""
    if models is None:
        specs: list[tuple[str, str | None]] = [(n, None) for n in list_model_names(client, bucket, prefix, warn=warn)]
        latest_only = True
    else:
        specs = [parse_model_spec(m) for m in models]
        latest_only = False
    targets = []
    for name, version in specs:
        through_latest = version is None
        if version is None:
            version = read_latest_version(client, bucket, name, prefix=prefix)
            if version is None:
                if latest_only:
                    continue  # a folder without LATEST: a first publish still in progress
                raise ModelsyncError(
                    f"model {name!r} not found in s3://{bucket}/{prefix}: publish it first "
                    "(modelsync publish) or check the name and --prefix / MODELSYNC_PREFIX"
                )
        record = store.read_record(name, version)
        manifest = None
        if record is None:
            manifest = read_manifest(client, bucket, name, version, prefix=prefix)
            if manifest is None:
                raise ModelsyncError(
                    f"version {version!r} of model {name!r} not found in s3://{bucket}/{prefix}: "
                    f"run `modelsync list` to see the published versions"
                )
        targets.append(_Target(name, version, record, manifest, switch, through_latest))
    if not targets:  # an empty bucket, a wrong prefix, or only first publishes still running
        raise JobFailed(
            f"no models in s3://{bucket}/{prefix}: publish one first (modelsync publish) "
            "or check --bucket and --prefix / MODELSYNC_PREFIX"
        )
    return targets


@dataclass
class _Puller:
    """What the steps of one pull share: where from, where to, the pools and the progress display."""

    client: object
    bucket: str
    prefix: str
    store: LocalStore
    downloads: _Downloads
    files_pool: ThreadPoolExecutor
    progress: Progress
    accepted: Accepted | None  # what the trust key's checks accepted (None: no trust key)

    def pull_model(self, target: _Target) -> ModelPullResult:
        store = self.store
        name, version = target.name, target.version
        # The pin keeps `prune --local` away from this version while it is built and switched to.
        with store.lock(name), store.pin(name, version):
            if self.accepted is not None and target.switch:
                self.accepted.recheck(store, name)
            # Another process may have finished this version while we waited for the lock.
            record = store.read_record(name, version) or target.record
            if record is not None and not store.stat_mismatches(record):
                bundle = self.accepted.bundles.get((name, version)) if self.accepted else None
                if bundle is not None:  # a version pulled before it had one, or a damaged copy
                    oms.place_bundle(store, name, version, bundle, durable=default_durable())
                if target.switch and store.current_version(name) != version:
                    _switch_checked(store, record)
                result = ModelPullResult(name, version, skipped_files=len(record.manifest.files))
            else:
                manifest = record.manifest if record else target.manifest
                if manifest is None:
                    manifest = read_manifest(self.client, self.bucket, name, version, prefix=self.prefix)
                if manifest is None:
                    raise JobFailed(f"s3://{self.bucket}: the manifest of {name}@{version} was deleted while pulling")
                trusted = dict(record.stats) if record else {}
                result = self._build_version(manifest, trusted, switch=target.switch)
            if self.accepted is not None and target.switch:
                self.accepted.keep_latest(store, name)
            return result

    def _bundle(self, manifest: Manifest) -> bytes | None:
        """The OMS bundle to place in a version directory being built: the verified one with a trust key,
        else the bucket's as it is (the reference verifier, or verify --trust-key, judges it)."""
        if self.accepted is not None:
            return self.accepted.bundles.get((manifest.name, manifest.version))
        from .trust import read_bundle

        if oms.holds_bundle_name(manifest):
            return None

        return read_bundle(S3Objects(self.client, self.bucket, self.prefix), manifest.name, manifest.version)

    def _build_version(self, manifest: Manifest, trusted: dict, *, switch: bool) -> ModelPullResult:
        tree = self.store.version_subdirs(manifest.name, manifest.version, create=True)
        try:
            return self._fill_version(manifest, trusted, tree, switch=switch)
        finally:
            tree.close()

    def _fill_version(self, manifest: Manifest, trusted: dict, tree: Subdirs, *, switch: bool) -> ModelPullResult:
        store, progress = self.store, self.progress
        name, version = manifest.name, manifest.version
        vdir = store.version_dir(name, version)
        reusable = _LocalCopies(store, name, version)
        result = ModelPullResult(name, version)
        progress.begin(
            f"{name}@{version}", manifest.total_bytes, model=name, version=version, files=len(manifest.files)
        )

        failed = threading.Event()  # after one file fails, the model fails: start no more transfers
        placed: list[FileEntry] = []  # files this pull put into vdir (removed again if the disk is full)
        full: list[tuple[FileEntry, OSError]] = []

        def one(entry: FileEntry):
            stop.check()  # queued files do not start once a stop was requested
            if failed.is_set():
                return entry, _Skipped()
            try:
                outcome = self._ensure_file(manifest, entry, trusted, reusable, tree)
                if outcome is not None:
                    placed.append(entry)
                return entry, bool(outcome)
            except OSError as exc:  # ENOSPC, EFBIG, EACCES...: name the file, not a temp name (or none)
                failed.set()
                if not os.path.isdir(vdir):
                    raise _removed_while_pulling(store, name, version) from None
                if exc.errno in _DISK_FULL:
                    full.append((entry, exc))
                raise JobFailed(
                    f"model {name}: cannot write {entry.path} in {vdir} ({exc.strerror or exc}): "
                    "check free space and permissions"
                ) from None
            except Exception:
                failed.set()
                raise

        errors = []
        for entry, outcome in self.files_pool.map(_capture(one), manifest.files):
            if isinstance(outcome, _Skipped):
                continue
            if isinstance(outcome, Exception):
                errors.append(outcome)
                continue
            if outcome:
                result.downloaded_files += 1
                result.downloaded_bytes += entry.size
            else:
                result.skipped_files += 1
        if errors:
            progress.end(model=name, version=version, failed=True)
            if full:
                raise _disk_full(store, manifest, placed, tree, *full[0])
            raise _first_user_error(errors)

        try:
            for folder in tree.opened():
                folder.fsync()
            stats = {e.path: stat_key(_lstat(tree.slot(e.path))) for e in manifest.files}
        except FileNotFoundError:
            raise _removed_while_pulling(store, name, version) from None
        bundle = self._bundle(manifest)
        if bundle is not None:
            oms.place_bundle(store, name, version, bundle, durable=default_durable())
        record = Record(manifest, stats)
        store.write_record(record)  # the record and then the link are written last
        reusable.record_moves()
        if switch:
            _switch_checked(store, record)
        progress.end(
            model=name, version=version, downloaded_files=result.downloaded_files, skipped_files=result.skipped_files
        )
        return result

    def _ensure_file(
        self, manifest: Manifest, entry: FileEntry, trusted: dict, reusable: _LocalCopies, tree: Subdirs
    ) -> bool | None:
        """Make the version directory hold a verified copy of entry. True when it was downloaded, False
        when linked from another version, None when it was already there."""
        store, progress, bucket, prefix = self.store, self.progress, self.bucket, self.prefix
        if _in_place(tree, entry, trusted):
            return None
        target = tree.slot(entry.path)  # its folders are made here, never through a link
        if reusable.place(entry, target):
            return False
        from .download import BrokenObject, ChecksumMismatch

        downloader = self.downloads.get()

        key = file_key(prefix, manifest.name, manifest.version, entry.path)
        for attempt in (1, 2):
            journal = None
            if entry.size > downloader.part_size:  # resumable: continue a partial download left by a stop
                part = downloader.part_size
                journal = (
                    resume.claim(store, entry.sha256, entry.size, part) if attempt == 1 else None
                ) or resume.PartJournal.create(store, entry.sha256, entry.size, part)
                if journal.done:
                    progress.event(
                        "resume",
                        model=manifest.name,
                        path=entry.path,
                        kept_bytes=journal.kept_bytes(),
                        message=f"{manifest.name}/{entry.path}: resuming after {journal.kept_bytes()} bytes "
                        "kept by an earlier pull (all of it is hashed again)",
                    )
            temp = journal.data if journal else store.temp_slot()
            try:
                downloader.fetch(key, entry, temp, journal)
            except BrokenObject as exc:
                raise JobFailed(
                    f"version {manifest.version} of {manifest.name} is incomplete in the bucket "
                    f"(s3://{bucket}/{key} {exc.problem}): republish it (modelsync publish)"
                ) from None
            except ChecksumMismatch as exc:
                if attempt == 2:
                    raise JobFailed(
                        f"{manifest.name}/{entry.path}: downloaded twice and both copies fail the sha256 check "
                        f"(got {exc.actual[:12]}..., manifest says {exc.expected[:12]}...): the object "
                        f"s3://{bucket}/{key} does not match its manifest; republish the model"
                    ) from None
                progress.event(
                    "retry",
                    model=manifest.name,
                    path=entry.path,
                    message=f"{manifest.name}/{entry.path} failed its sha256 check; fetching it again",
                )
                continue
            temp.move_to(target)
            if journal is not None:
                journal.remove()
            return True
        raise AssertionError("unreachable")


def _switch_checked(store: LocalStore, record: Record) -> None:
    """Switch to a version whose files are all in place, and check again once switched: without
    a working lock, a `prune --local` that ran before our pin existed may remove it. Then the link
    goes back to the version it pointed to, and the pull fails in one line."""
    name, version = record.manifest.name, record.manifest.version
    previous = store.current_version(name)
    if store.missing_files(record):
        raise _removed_while_pulling(store, name, version)
    store.switch(name, version)
    if store.read_record(name, version) is None or store.missing_files(record):
        old = store.read_record(name, previous) if previous and previous != version else None
        if previous and old is not None and not store.missing_files(old):
            store.switch(name, previous)
        raise _removed_while_pulling(store, name, version)


_DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def _disk_full(
    store: LocalStore, manifest: Manifest, placed: list[FileEntry], tree: Subdirs, entry: FileEntry, exc: OSError
) -> JobFailed:
    """A full disk: remove what this pull wrote for the version (unless another pull recorded it
    meanwhile), so the failed pull leaves the disk as it found it, and say how much space it needs."""
    vdir = store.version_dir(manifest.name, manifest.version)
    removed = 0
    if store.read_record(manifest.name, manifest.version) is None:
        for done in placed:
            if tree.slot(done.path).unlink():
                removed += done.size
        tree.remove_empty()  # empty directories only; fails harmlessly on anything still there
        store.remove_empty_version(manifest.name, manifest.version)
    needed = sum(e.size for e in manifest.files) - _present_bytes(vdir, manifest)
    free = shutil.disk_usage(store.dest).free
    return JobFailed(
        f"model {manifest.name}: cannot write {entry.path} in {vdir} ({exc.strerror or exc}): "
        f"{manifest.name}@{manifest.version} needs {_mib(needed)} MiB more and {store.dest} has {_mib(free)} MiB "
        f"free; removed the {_mib(removed)} MiB this pull had written: check free space and permissions, "
        "then pull again"
    )


def _present_bytes(vdir: str, manifest: Manifest) -> int:
    present = 0
    for entry in manifest.files:
        with contextlib.suppress(OSError):
            if os.stat(os.path.join(vdir, entry.path)).st_size == entry.size:
                present += entry.size
    return present


def _mib(count: int) -> str:
    return f"{count / 1048576:,.1f}"


def _removed_while_pulling(store: LocalStore, name: str, version: str) -> JobFailed:
    return JobFailed(
        f"version {version} of {name} was removed from {store.dest} while it was being pulled "
        "(a concurrent `modelsync prune --local` without a working lock?): pull again"
    )


def _in_place(tree: Subdirs, entry: FileEntry, trusted: dict) -> bool:
    """The version directory already holds a verified copy of entry (a link there is refused)."""
    try:
        target = tree.slot(entry.path)
        st = _lstat(target)
    except FileNotFoundError:
        return False
    if trusted.get(entry.path) == stat_key(st) and st.st_size == entry.size:
        return True
    # Left by an interrupted or concurrent pull, or changed since it was recorded: it was verified
    # before its rename, but we check the bytes again rather than trust a file we have no record of.
    return st.st_size == entry.size and st.st_uid == os.geteuid() and _sha256(target) == entry.sha256


@contextlib.contextmanager
def _existing_tree(store: LocalStore, name: str, version: str) -> Iterator[Subdirs | None]:
    """The folders of a version directory as they are (none made), or None when it does not exist."""
    try:
        tree = store.version_subdirs(name, version)
    except FileNotFoundError:
        yield None
        return
    try:
        yield tree
    finally:
        tree.close()


def _lstat(slot: Slot) -> os.stat_result:
    """The stat of a file placed in a version: a regular file; a link there is refused."""
    st = slot.dir.lstat(slot.name)
    if stat.S_ISLNK(st.st_mode):
        raise link_refused(slot.path)
    return st


def _sha256(slot: Slot) -> str:
    return sha256_file(slot.name, dir_fd=slot.dir.fd, follow_symlinks=False)


class _LocalCopies:
    """Unchanged, verified files of the model's other recorded versions, by content, that a new version
    links (or copies and checks) instead of downloading them; and what those links moved. A hard link
    moves the linked file's ctime and nothing else: once the new version is recorded, the keys the
    other records keep are brought along, so their next check does not hash those files again."""

    def __init__(self, store: LocalStore, name: str, version: str):
        self.store, self.name, self.version = store, name, version
        self.found: dict[tuple[str, int], tuple[str, StatKey]] = {}  # -> (path in .modelsync, stat key)
        self.moved: dict[StatKey, StatKey] = {}
        self._lock = threading.Lock()
        for other in store.recorded_versions(name):
            record = store.read_record(name, other) if other != version else None
            if record is None:
                continue
            stats = store.file_stats(record)
            for entry in record.manifest.files:
                st = stats[entry.path]
                if st is not None and stat.S_ISREG(st.st_mode) and stat_key(st) == record.stats.get(entry.path):
                    source = f"versions/{name}/{other}/{entry.path}"
                    self.found.setdefault((entry.sha256, entry.size), (source, stat_key(st)))

    def __contains__(self, content: tuple[str, int]) -> bool:
        return content in self.found

    def place(self, entry: FileEntry, target: Slot) -> bool:
        """Put an identical local file at target; False when there is none (or it changed)."""
        found = self.found.get((entry.sha256, entry.size))
        if found is None:
            return False
        source, key = found
        temp = self.store.temp_slot()
        try:
            with self._lock:  # one link at a time, so each one's key before and after is known exactly
                expected = follow_moves(self.moved, key)
                try:
                    if not self.store.link_file(source, temp, expected):
                        return False  # changed since it was checked: download it instead
                except OSError as exc:
                    if exc.errno not in CANNOT_LINK:
                        raise
                else:
                    temp.move_to(target)  # a rename moves the ctime too
                    # A concurrent pull (no working lock) may have linked this same file there first: a
                    # rename over another link to the same file does nothing and succeeds (rename(2)),
                    # leaving the temp. The name is ours alone, so remove it (it moves the ctime too).
                    temp.unlink()
                    self.moved[expected] = stat_key(target.dir.lstat(target.name))
                    return True
            self.store.copy_file(source, temp)
            if _sha256(temp) != entry.sha256:
                temp.unlink()
                return False
            temp.move_to(target)
            return True
        except OSError:
            with contextlib.suppress(OSError):
                temp.unlink()
            return False

    def record_moves(self) -> None:
        if self.moved:
            self.store.move_stats(self.name, self.moved, skip=self.version)


class _Skipped:
    """A file not attempted because another file of the model had already failed."""


def _capture(fn):
    def wrapped(arg):
        try:
            return fn(arg)
        except Exception as exc:  # collected and reported per model
            return arg, exc

    return wrapped


def _first_user_error(errors: list[Exception]) -> Exception:
    for exc in errors:
        if isinstance(exc, ModelsyncError) and not isinstance(exc, JobFailed):
            return exc  # configuration problems (access denied, missing bucket) keep exit code 2
    for exc in errors:
        if isinstance(exc, JobFailed):
            return exc
    raise errors[0]
