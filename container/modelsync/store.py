"""The local (or EFS) model root.

<dest>/<name>                              relative symlink -> .modelsync/versions/<name>/<version>
<dest>/.modelsync/versions/<name>/<version>/  the files of one version (verified before rename)
<dest>/.modelsync/records/<name>/<version>.json  manifest + stat of each verified file, written last
<dest>/.modelsync/tmp/                     unique temp files (same filesystem, so rename is atomic),
                                           and pins: <host>.<pid>.<random>.<name>@<version>.pin
<dest>/.modelsync/partial/                 big files being downloaded, kept for resuming (resume.py)
<dest>/.modelsync/locks/<name>.lock        flock: only avoids duplicate work, never needed for correctness
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
import socket
import time
import uuid
from dataclasses import dataclass

from .config import NAME_RE, VERSION_RE
from .errors import ModelsyncError
from .manifest import Manifest

META = ".modelsync"
STALE_FOREIGN_TEMP_SECONDS = 24 * 3600
StatKey = tuple[int, int, int]  # size, mtime_ns, inode


def stat_key(st: os.stat_result) -> StatKey:
    return (st.st_size, st.st_mtime_ns, st.st_ino)


@dataclass
class Record:
    manifest: Manifest
    stats: dict[str, StatKey]


def fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    except OSError as exc:  # some network filesystems refuse fsync on directories
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


class LocalStore:
    def __init__(self, dest: str | os.PathLike):
        self.dest = os.path.abspath(os.fspath(dest))
        self.meta = os.path.join(self.dest, META)
        self.tmp = os.path.join(self.meta, "tmp")
        self.partial = os.path.join(self.meta, "partial")
        self._host = socket.gethostname().replace(".", "_") or "host"

    # Paths -----------------------------------------------------------------------------------
    def link_path(self, name: str) -> str:
        return os.path.join(self.dest, name)

    def version_dir(self, name: str, version: str) -> str:
        return os.path.join(self.meta, "versions", name, version)

    def record_path(self, name: str, version: str) -> str:
        return os.path.join(self.meta, "records", name, f"{version}.json")

    def link_target(self, name: str, version: str) -> str:
        return f"{META}/versions/{name}/{version}"

    def ensure(self) -> None:
        try:
            for sub in ("tmp", "partial", "versions", "records", "locks"):
                os.makedirs(os.path.join(self.meta, sub), exist_ok=True)
        except OSError as exc:
            raise ModelsyncError(
                f"cannot write to {self.dest} ({exc.strerror}): use a writable --dest / MODELSYNC_DEST"
            ) from None

    # Temp files ------------------------------------------------------------------------------
    def new_temp_path(self) -> str:
        """A name nobody else uses: host, pid and a random part (several tasks share one EFS)."""
        return os.path.join(self.tmp, f"{self._host}.{os.getpid()}.{uuid.uuid4().hex}.part")

    def clean_stale_temps(self) -> int:
        """Remove temp files and pins left by dead processes of this host, and old ones of other hosts,
        and partial downloads nobody can resume any more."""
        from . import resume

        removed = 0
        for entry in self._temp_entries():
            if self.owner_is_gone(entry):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
                    removed += 1
        return removed + resume.clean_stale(self)

    def _temp_entries(self) -> list[os.DirEntry]:
        try:
            return list(os.scandir(self.tmp))
        except FileNotFoundError:
            return []

    def owner_is_gone(self, entry: os.DirEntry) -> bool:
        """A temp file or pin named <host>.<pid>...: is the process that made it gone?"""
        parts = entry.name.split(".")
        try:
            host, pid = parts[0], int(parts[1])
        except (IndexError, ValueError):
            return False  # not ours
        if host == self._host:
            return pid != os.getpid() and not _pid_alive(pid)
        try:  # another task on the same EFS: we cannot see its processes, so go by age
            return time.time() - entry.stat(follow_symlinks=False).st_mtime > STALE_FOREIGN_TEMP_SECONDS
        except OSError:
            return False

    # Pins: "a live pull is using this version" (what prune --local must not remove) ----------
    @contextlib.contextmanager
    def pin(self, name: str, version: str):
        """Mark name@version as in use by this process until the block ends (a crash leaves a
        pin that clean_stale_temps removes like a temp file). Needs no lock: prune reads pins."""
        path = self.new_temp_path()[: -len(".part")] + f".{name}@{version}.pin"
        with open(path, "x"):
            pass
        try:
            yield
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)

    def pinned_versions(self, name: str) -> set[str]:
        """Versions of name that a live pull (this host or, by age, another one) has pinned."""
        pinned = set()
        for entry in self._temp_entries():
            if not entry.name.endswith(".pin"):
                continue
            parts = entry.name[: -len(".pin")].split(".", 3)  # host, pid, random, name@version
            pinned_name, _, version = parts[-1].rpartition("@")
            if len(parts) == 4 and pinned_name == name and not self.owner_is_gone(entry):
                pinned.add(version)
        return pinned

    # Current version -------------------------------------------------------------------------
    def current_version(self, name: str) -> str | None:
        link = self.link_path(name)
        try:
            target = os.readlink(link)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno == errno.EINVAL:
                raise ModelsyncError(
                    f"{link} is a real file or directory, not a modelsync link: move it away and pull again"
                ) from None
            raise
        prefix = f"{META}/versions/{name}/"
        version = target[len(prefix) :] if target.startswith(prefix) else ""
        return version if VERSION_RE.fullmatch(version) else None

    def installed_models(self) -> list[str]:
        """Names whose <dest>/<name> is a modelsync link."""
        try:
            entries = sorted(os.scandir(self.dest), key=lambda e: e.name)
        except FileNotFoundError:
            return []
        return [
            e.name for e in entries if e.is_symlink() and NAME_RE.fullmatch(e.name) and self.current_version(e.name)
        ]

    def switch(self, name: str, version: str) -> None:
        """Point <dest>/<name> at the version atomically: rename of a fresh symlink over the old one."""
        link = self.link_path(name)
        if os.path.lexists(link) and not os.path.islink(link):
            raise ModelsyncError(
                f"{link} is a real file or directory, not a modelsync link: move it away and pull again"
            )
        temp_link = self.new_temp_path()
        os.symlink(self.link_target(name, version), temp_link)
        os.replace(temp_link, link)
        fsync_dir(self.dest)

    # Records ---------------------------------------------------------------------------------
    def read_record(self, name: str, version: str) -> Record | None:
        path = self.record_path(name, version)
        try:
            with open(path, "rb") as handle:
                data = json.load(handle)
            manifest = Manifest.from_json(json.dumps(data["manifest"]), where=path)
            stats = {p: tuple(v) for p, v in data["stats"].items()}
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError, ModelsyncError):
            return None  # unreadable record: treated as absent, everything is re-verified
        if manifest.name != name or manifest.version != version:
            return None
        return Record(manifest, stats)

    def write_record(self, record: Record) -> None:
        manifest = record.manifest
        path = self.record_path(manifest.name, manifest.version)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        payload = {
            "manifest": json.loads(manifest.to_json()),
            "stats": {p: list(v) for p, v in record.stats.items()},
            "verified_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        temp = self.new_temp_path()
        with open(temp, "w") as handle:
            json.dump(payload, handle, separators=(",", ":"))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
        fsync_dir(os.path.dirname(path))

    def recorded_versions(self, name: str) -> list[str]:
        folder = os.path.join(self.meta, "records", name)
        try:
            return sorted(n[:-5] for n in os.listdir(folder) if n.endswith(".json"))
        except FileNotFoundError:
            return []

    def stat_mismatches(self, record: Record) -> list[str]:
        """Paths whose current stat differs from the record (missing, resized, rewritten)."""
        vdir = self.version_dir(record.manifest.name, record.manifest.version)
        bad = []
        for entry in record.manifest.files:
            try:
                current = stat_key(os.stat(os.path.join(vdir, entry.path)))
            except OSError:
                bad.append(entry.path)
                continue
            if record.stats.get(entry.path) != current or current[0] != entry.size:
                bad.append(entry.path)
        return bad

    def missing_files(self, record: Record) -> list[str]:
        """Paths of the record that are not in the version directory at their size. Unlike
        stat_mismatches, a file replaced by an identical copy (a concurrent pull) is not missing."""
        vdir = self.version_dir(record.manifest.name, record.manifest.version)
        missing = []
        for entry in record.manifest.files:
            try:
                if os.stat(os.path.join(vdir, entry.path)).st_size != entry.size:
                    missing.append(entry.path)
            except OSError:
                missing.append(entry.path)
        return missing

    # Removal ---------------------------------------------------------------------------------
    def remove_version(self, name: str, version: str) -> None:
        """Record first (so the version is never trusted half-deleted), then the files."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.record_path(name, version))
        with contextlib.suppress(FileNotFoundError):  # the manifest signature a trusted pull kept (signing.py)
            os.unlink(self.record_path(name, version)[: -len(".json")] + ".sig")
        shutil.rmtree(self.version_dir(name, version), ignore_errors=True)

    def version_dirs(self, name: str) -> list[str]:
        try:
            return sorted(os.listdir(os.path.join(self.meta, "versions", name)))
        except FileNotFoundError:
            return []

    def model_dirs(self) -> list[str]:
        try:
            return sorted(os.listdir(os.path.join(self.meta, "versions")))
        except FileNotFoundError:
            return []

    # Locking ---------------------------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self, name: str):
        """Exclusive per-model lock across processes and hosts (flock on NFSv4/EFS).

        Only avoids duplicate downloads: every step is correct without it, because files are
        verified in unique temp files and renamed, and the record and link are written last.
        MODELSYNC_NO_LOCK=1 turns it off (used by the tests to prove exactly that)."""
        if os.environ.get("MODELSYNC_NO_LOCK") == "1":
            yield
            return
        path = os.path.join(self.meta, "locks", f"{name}.lock")
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock; a killed process releases it too


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
