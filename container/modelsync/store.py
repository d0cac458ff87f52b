"""The local (or EFS) model root.

<dest>/<name>                              relative symlink -> .modelsync/versions/<name>/<version>
<dest>/.modelsync/                         0711: others may pass through (an app of another uid reads
                                           the models through a view), not list or write
<dest>/.modelsync/versions/<name>/<version>/  the files of one version (verified before rename) and its OMS
                                           bundle model.sig (oms.py); versions/ and versions/<name>/ 0711,
                                           version directories 0755, files 0644
<dest>/.modelsync/records/<name>/<version>.json  manifest + stat of each verified file, written last (0700),
                                           and <version>.sig, the manifest signature a trusted pull kept
<dest>/.modelsync/latest/<name>.json       the newest LATEST statement a trusted pull switched to (freshness.py;
                                           0700)
<dest>/.modelsync/tmp/                     unique temp files (same filesystem, so rename is atomic),
                                           and pins: <host>.<pid>.<random>.<name>@<version>.pin (0700)
<dest>/.modelsync/partial/                 big files being downloaded, kept for resuming (resume.py; 0700)
<dest>/.modelsync/locks/<name>.lock        flock: only avoids duplicate work, never needed for correctness (0700)

Trust: the store trusts only what this user made. Before any use, <dest> must not be writable by group or
others (unless it has the sticky bit), and .modelsync and every directory under it that is used must be a
real directory of this user that group and others cannot write; anything else is refused in one line
(storefs.UnsafeStore, exit 2). A writer creates the directories with the modes above and tightens the 0755
the previous versions made; a reader (verify, serve, view, pull --dry-run) changes nothing, so a read-only
EFS mirror of the same uid is accepted as it is. Everything under .modelsync is reached through directory
descriptors without following links (storefs.py), and the only links modelsync makes are <dest>/<name>
and the links inside views.

Records: a record keeps size, mtime, ctime and inode of each verified file; pull and verify trust a file
only while all four match, and hash any other file before it counts. A rewrite in place keeps size and
inode and can set the mtime back, but not the ctime: only the kernel sets it (on NFS and EFS the server
does; no client can send one). The records need no HMAC: a key kept in the store could be read by exactly
those who can already write the records (this uid, root), and the rules above keep everyone else out.
Adding or removing a hard link moves a file's ctime too: when pull links a file of another version, or
prune --local removes a version that shared files, the other records are brought along.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
import socket
import stat
import time
import uuid
from dataclasses import dataclass

from .config import NAME_RE, VERSION_RE
from .errors import ModelsyncError
from .manifest import Manifest
from .storefs import Dir, Slot, Subdirs, regular_files

META = ".modelsync"
META_MODE = 0o711  # others may traverse (through a view), not list or write
# The directories under .modelsync and their modes: only versions/ is traversed by others.
SUBDIRS = {"tmp": 0o700, "partial": 0o700, "versions": 0o711, "records": 0o700, "locks": 0o700, "latest": 0o700}
STALE_FOREIGN_TEMP_SECONDS = 24 * 3600
CANNOT_LINK = (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP)  # copy instead
StatKey = tuple[int, int, int, int]  # size, mtime_ns, ctime_ns, inode


def stat_key(st: os.stat_result) -> StatKey:
    """What a record keeps of a verified file. A rewrite in place keeps size and inode, and the mtime can
    be set back, but it changes the ctime, which only the kernel sets (also on NFS and EFS, where the
    server keeps it)."""
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


def follow_moves(moved: dict[StatKey, StatKey], key: StatKey) -> StatKey:
    """The key a file has now after the moves recorded (old -> new, possibly several of one file)."""
    while key in moved:
        key = moved[key]
    return key


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
    """The store at dest. Its directories are opened and checked on first use (or by ensure(), which
    also creates them); close(), a with block or the garbage collector closes them."""

    def __init__(self, dest: str | os.PathLike):
        self.dest = os.path.abspath(os.fspath(dest))
        self.meta = os.path.join(self.dest, META)
        self.tmp = os.path.join(self.meta, "tmp")
        self.partial = os.path.join(self.meta, "partial")
        self._host = socket.gethostname().replace(".", "_") or "host"
        self._dirs: dict[str, Dir] | None = None
        self._created = False

    # Paths (for messages and for the links of views) -------------------------------------------
    def link_path(self, name: str) -> str:
        return os.path.join(self.dest, name)

    def version_dir(self, name: str, version: str) -> str:
        return os.path.join(self.meta, "versions", name, version)

    def record_path(self, name: str, version: str) -> str:
        return os.path.join(self.meta, "records", name, f"{version}.json")

    def link_target(self, name: str, version: str) -> str:
        return f"{META}/versions/{name}/{version}"

    # Opening and checking -----------------------------------------------------------------------
    def ensure(self) -> None:
        """For writers: create what is missing, tighten what the previous versions made, check it all."""
        if not self._created:
            self.close()
            self._open(create=True)

    def check(self) -> None:
        """For readers: check what exists (a missing store is simply empty), change nothing."""
        if self._dirs is None:
            self._open(create=False)

    def _open(self, *, create: bool) -> None:
        dirs: dict[str, Dir] = {}
        try:
            dirs["dest"] = Dir.root(self.dest, create=create)
            dirs["meta"] = _checked(dirs["dest"], META, META_MODE, create)
            for name, mode in SUBDIRS.items():
                with contextlib.suppress(FileNotFoundError):
                    dirs[name] = _checked(dirs["meta"], name, mode, create)
            for name in ("versions", "records"):  # what names models: no link may stand for one
                if name in dirs:
                    dirs[name].subdirs()
        except OSError as exc:
            if isinstance(exc, FileNotFoundError) and not create:
                self._dirs, self._created = dirs, False  # a reader of a store not (fully) there: empty
                return
            _close_all(dirs)
            raise ModelsyncError(
                f"cannot {'write to' if create else 'read'} {self.dest} ({exc.strerror}): "
                f"use a {'writable' if create else 'readable'} --dest / MODELSYNC_DEST"
            ) from None
        except BaseException:
            _close_all(dirs)
            raise
        self._dirs, self._created = dirs, create

    def _dir(self, name: str) -> Dir:
        """An open, checked directory of the store ("dest", "meta" or one of SUBDIRS); FileNotFoundError
        when the store has none."""
        self.check()
        assert self._dirs is not None
        found = self._dirs.get(name)
        if found is None:
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), os.path.join(self.meta, name))
        return found

    def close(self) -> None:
        if self._dirs is not None:
            _close_all(self._dirs)
        self._dirs, self._created = None, False

    def __enter__(self) -> LocalStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()

    # Temp files ------------------------------------------------------------------------------
    def temp_name(self) -> str:
        """A name nobody else uses: host, pid and a random part (several tasks share one EFS)."""
        return f"{self._host}.{os.getpid()}.{uuid.uuid4().hex}.part"

    def temp_slot(self) -> Slot:
        return Slot(self._dir("tmp"), self.temp_name())

    def partial_dir(self) -> Dir:
        return self._dir("partial")

    def clean_stale_temps(self) -> int:
        """Remove temp files and pins left by dead processes of this host, and old ones of other hosts,
        and partial downloads nobody can resume any more."""
        from . import resume

        removed = 0
        tmp = self._dir("tmp")
        for entry in tmp.entries():
            if self.owner_is_gone(entry) and tmp.unlink(entry.name):
                removed += 1
        return removed + resume.clean_stale(self)

    def _temp_entries(self) -> list[os.DirEntry]:
        try:
            return self._dir("tmp").entries()
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
        slot = Slot(self._dir("tmp"), self.temp_name()[: -len(".part")] + f".{name}@{version}.pin")
        os.close(slot.create(0o600))
        try:
            yield
        finally:
            slot.unlink()

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
        dest = self._dir("dest")
        with contextlib.suppress(FileNotFoundError):
            if not stat.S_ISLNK(dest.lstat(name).st_mode):
                raise ModelsyncError(
                    f"{self.link_path(name)} is a real file or directory, not a modelsync link: "
                    "move it away and pull again"
                )
        temp = self.temp_slot()
        os.symlink(self.link_target(name, version), temp.name, dir_fd=temp.dir.fd)
        temp.move_to(Slot(dest, name))
        dest.fsync()

    # Records (and the signatures kept beside them) ---------------------------------------------
    def read_record(self, name: str, version: str) -> Record | None:
        path = self.record_path(name, version)
        raw = self.read_record_file(name, f"{version}.json")
        if raw is None:
            return None
        try:
            data = json.loads(raw)
            manifest = Manifest.from_json(json.dumps(data["manifest"]), where=path)
            stats = {p: tuple(v) for p, v in data["stats"].items()}
        except (ValueError, KeyError, TypeError, AttributeError, ModelsyncError):
            return None  # unreadable record: treated as absent, everything is re-verified
        if manifest.name != name or manifest.version != version:
            return None
        return Record(manifest, stats)

    def write_record(self, record: Record) -> None:
        manifest = record.manifest
        payload = {
            "manifest": json.loads(manifest.to_json()),
            "stats": {p: list(v) for p, v in record.stats.items()},
            "verified_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        data = json.dumps(payload, separators=(",", ":")).encode()
        self.write_record_file(manifest.name, f"{manifest.version}.json", data)

    def read_record_file(self, name: str, filename: str, *, limit: int = -1) -> bytes | None:
        """A file of records/<name>/ (a record, a kept signature; at most limit bytes), or None when absent."""
        try:
            with self._dir("records").sub(name) as folder:
                return folder.read(filename, limit)
        except FileNotFoundError:
            return None

    def write_record_file(self, name: str, filename: str, data: bytes) -> None:
        """Write records/<name>/<filename> whole or not at all (write_whole)."""
        with self._dir("records").sub(name, create=SUBDIRS["records"]) as folder:
            self.write_whole(Slot(folder, filename), data)

    def write_whole(self, target: Slot, data: bytes, *, mode: int = 0o600, durable: bool = True) -> None:
        """Write a small file whole or not at all: a new temp file of the store (O_EXCL, same filesystem),
        fsynced when durable, renamed over target (a link there is replaced, never followed)."""
        temp = self.temp_slot()
        fd = temp.create(mode, os.O_WRONLY)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                if durable:
                    handle.flush()
                    os.fsync(handle.fileno())
            temp.move_to(target)
            if durable:
                target.dir.fsync()
        finally:
            temp.unlink()

    # The LATEST statements the store accepted (freshness.py) ----------------------------------
    def read_latest_file(self, name: str, *, limit: int = -1) -> bytes | None:
        """latest/<name>.json (at most limit bytes), or None when absent."""
        try:
            return self._dir("latest").read(f"{name}.json", limit)
        except FileNotFoundError:
            return None

    def write_latest_file(self, name: str, data: bytes) -> None:
        """Write latest/<name>.json whole or not at all (write_whole)."""
        self.write_whole(Slot(self._dir("latest"), f"{name}.json"), data)

    def recorded_versions(self, name: str) -> list[str]:
        try:
            with self._dir("records").sub(name) as folder:
                return sorted(n[:-5] for n in folder.names() if n.endswith(".json"))
        except FileNotFoundError:
            return []

    # Version directories ---------------------------------------------------------------------
    def version_tree(self, name: str, version: str, *, create: bool = False) -> Dir:
        """The checked directory of name@version (made 0755 with create); FileNotFoundError if missing."""
        with self._dir("versions").sub(name, create=SUBDIRS["versions"] if create else None) as folder:
            return folder.sub(version, create=0o755 if create else None)

    def version_subdirs(self, name: str, version: str, *, create: bool = False) -> Subdirs:
        return Subdirs(self.version_tree(name, version, create=create), create=create)

    def read_version_file(self, name: str, version: str, filename: str, *, limit: int = -1) -> bytes | None:
        """A file at the top of name@version's directory (its model.sig; at most limit bytes), or None when
        it or the directory is absent. A link there is refused."""
        try:
            with self.version_tree(name, version) as vdir:
                return vdir.read(filename, limit)
        except FileNotFoundError:
            return None

    def write_version_file(self, name: str, version: str, filename: str, data: bytes, *, durable: bool) -> None:
        """Write a file at the top of name@version's existing directory whole (write_whole), 0644 like the
        version's files (an app of another uid reads them)."""
        with self.version_tree(name, version) as vdir:
            self.write_whole(Slot(vdir, filename), data, mode=0o644, durable=durable)

    def scan_version(self, name: str, version: str) -> dict[str, os.stat_result]:
        """lstat of every regular file in the version directory by its POSIX path there ({} when the
        directory is missing). A link or a special file anywhere in it is refused (UnsafeStore)."""
        try:
            with self.version_tree(name, version) as vdir:
                return regular_files(vdir)
        except FileNotFoundError:
            return {}

    def stat_mismatches(self, record: Record) -> list[str]:
        """Paths whose current stat differs from the record (missing, resized, rewritten)."""
        return [p for p, st in self.file_stats(record).items() if st is None or record.stats.get(p) != stat_key(st)]

    def missing_files(self, record: Record) -> list[str]:
        """Paths of the record that are not in the version directory at their size. Unlike
        stat_mismatches, a file replaced by an identical copy (a concurrent pull) is not missing."""
        sizes = {e.path: e.size for e in record.manifest.files}
        return [
            p
            for p, st in self.file_stats(record).items()
            if st is None or not stat.S_ISREG(st.st_mode) or st.st_size != sizes[p]
        ]

    def file_stats(self, record: Record) -> dict[str, os.stat_result | None]:
        """lstat of each file of the record's version, relative to its checked directory."""
        found: dict[str, os.stat_result | None] = {e.path: None for e in record.manifest.files}
        try:
            with self.version_tree(record.manifest.name, record.manifest.version) as vdir:
                for path in found:
                    with contextlib.suppress(OSError):
                        found[path] = vdir.lstat(path)
        except FileNotFoundError:
            pass
        return found

    # Removal ---------------------------------------------------------------------------------
    def remove_version(self, name: str, version: str) -> None:
        """Record first (so the version is never trusted half-deleted), then the files; through
        directory descriptors, never following a link out of the store. Files it shared with other
        versions (hard links) had their ctime moved by the removal: those records are brought along."""
        record = self.read_record(name, version)
        shared = {
            stat_key(st)
            for st in (self.file_stats(record).values() if record else ())
            if st is not None and stat.S_ISREG(st.st_mode) and st.st_nlink > 1
        }
        with contextlib.suppress(FileNotFoundError), self._dir("records").sub(name) as records:
            records.unlink(f"{version}.json")
            records.unlink(f"{version}.sig")  # the manifest signature a trusted pull kept (signing.py)
        with contextlib.suppress(FileNotFoundError), self._dir("versions").sub(name) as versions:
            versions.remove_tree(version)
        if shared:
            self.move_stats(name, self._moved_since(name, shared), skip=version)

    def _moved_since(self, name: str, keys: set[StatKey]) -> dict[StatKey, StatKey]:
        """old -> new key of the files of name's records that had one of `keys` and since changed only
        their ctime (what adding or removing a hard link does)."""
        moved = {}
        for version in self.recorded_versions(name):
            record = self.read_record(name, version)
            if record is None:
                continue
            for path, st in self.file_stats(record).items():
                old = record.stats.get(path)
                if old in keys and st is not None and old is not None:
                    new = stat_key(st)
                    if (new[0], new[1], new[3]) == (old[0], old[1], old[3]):
                        moved[old] = new
        return moved

    def remove_empty_version(self, name: str, version: str) -> None:
        with contextlib.suppress(OSError), self._dir("versions").sub(name) as versions:
            os.rmdir(version, dir_fd=versions.fd)

    def link_file(self, source: str, temp: Slot, expected: StatKey) -> bool:
        """Hard-link source (a path in .modelsync of a verified file) to the new name temp, if its stat is
        still `expected` (False when it changed). OSError (CANNOT_LINK) where the filesystem cannot link.
        Never through a link."""
        meta = self._dir("meta")
        if stat_key(os.stat(source, dir_fd=meta.fd, follow_symlinks=False)) != expected:
            return False
        os.link(source, temp.name, src_dir_fd=meta.fd, dst_dir_fd=temp.dir.fd, follow_symlinks=False)
        return True

    def copy_file(self, source: str, temp: Slot) -> None:
        """Copy source (a path in .modelsync) to the new name temp; the caller checks the bytes."""
        with (
            open(os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=self._dir("meta").fd), "rb") as src,
            open(temp.create(0o644, os.O_WRONLY), "wb") as dst,
        ):
            shutil.copyfileobj(src, dst, 1024 * 1024)

    def move_stats(self, name: str, moved: dict[StatKey, StatKey], *, skip: str) -> None:
        """After modelsync itself hard-linked files of name's versions elsewhere (which moves their ctime,
        nothing else), bring the keys their records keep along (old -> new), so the next check of those
        versions does not hash the files again. Under the model's lock; skip: the version just recorded."""
        for version in self.recorded_versions(name):
            record = self.read_record(name, version) if version != skip else None
            if record is None:
                continue
            stats = {path: follow_moves(moved, key) for path, key in record.stats.items()}
            if stats != record.stats:
                self.write_record(Record(record.manifest, stats))

    def version_dirs(self, name: str) -> list[str]:
        try:
            with self._dir("versions").sub(name) as folder:
                return folder.subdirs()
        except FileNotFoundError:
            return []

    def model_dirs(self) -> list[str]:
        try:
            return self._dir("versions").subdirs()
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
        try:
            locks = self._dir("locks")
        except FileNotFoundError:  # a reader of a store without locks (prune --dry-run): nothing to avoid
            yield
            return
        fd = locks.open(f"{name}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock; a killed process releases it too


def _checked(parent: Dir, name: str, mode: int, create: bool) -> Dir:
    """A fixed directory of the store, checked; a writer makes it, or takes back the bits the previous
    versions gave others (their 0755)."""
    found = parent.sub(name, create=mode if create else None)
    if create:
        current = stat.S_IMODE(os.fstat(found.fd).st_mode)
        if current & ~mode:
            os.fchmod(found.fd, current & mode)
    return found


def _close_all(dirs: dict[str, Dir]) -> None:
    for found in dirs.values():
        found.close()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
