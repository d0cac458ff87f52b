"""Directories and files under <dest>/.modelsync: reached without following links, used only when this
user owns them and nobody else may write them.

A directory is opened one component at a time from its open parent (O_DIRECTORY | O_NOFOLLOW), so a link
planted on the way is refused instead of leading out of the store. Files are opened with O_NOFOLLOW,
created with O_EXCL, and used only when they are regular files of this user. Once a chain of directories
from <dest> down is checked, nobody but this user (and root) can change an entry on it, so what was
checked stays true while its descriptors are used: the checks are made once per open, not per use.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import threading
from dataclasses import dataclass

from .errors import JobFailed, ModelsyncError

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
OTHERS_WRITE = stat.S_IWGRP | stat.S_IWOTH


class UnsafeStore(ModelsyncError):
    """Something in the store that modelsync did not make, or that someone else may change (exit 2)."""


def link_refused(path: str) -> UnsafeStore:
    return UnsafeStore(
        f"{path} is a symbolic link, and modelsync makes none there (someone else wrote into the store): "
        "remove it, check the store (modelsync verify --deep) and run again"
    )


def writable_refused(path: str, st: os.stat_result) -> UnsafeStore:
    return UnsafeStore(
        f"{path} is writable by group or others (mode {stat.S_IMODE(st.st_mode):04o}), so anyone may have "
        f"changed the store: `chmod go-w {path}` and check it (modelsync verify --deep) if you trust it, "
        "else remove the store and pull again"
    )


def check_owned(st: os.stat_result, path: str, *, directory: bool) -> None:
    """A directory (or regular file) of this user that group and others cannot write, or UnsafeStore."""
    if stat.S_ISLNK(st.st_mode):
        raise link_refused(path)
    if not (stat.S_ISDIR(st.st_mode) if directory else stat.S_ISREG(st.st_mode)):
        kind = "directory" if directory else "regular file"
        raise UnsafeStore(
            f"{path} should be a {kind} and is not (modelsync did not make it): move it away and run again"
        )
    if st.st_uid != os.geteuid():
        raise UnsafeStore(
            f"{path} is owned by uid {st.st_uid}, not by this user (uid {os.geteuid()}): run modelsync as the "
            "store's owner, or give it a --dest / MODELSYNC_DEST of its own"
        )
    if st.st_mode & OTHERS_WRITE:
        raise writable_refused(path, st)


def _refusal(exc: OSError, parent: Dir, name: str, *, directory: bool) -> OSError:
    """The error for a failed open under O_NOFOLLOW: a planted link or a wrong type becomes UnsafeStore
    (TreeRefused in a TreeDir)."""
    path = os.path.join(parent.path, name)
    if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.EEXIST):
        with contextlib.suppress(OSError):
            parent.check(os.stat(name, dir_fd=parent.fd, follow_symlinks=False), path, directory=directory)
    return exc


class Dir:
    """An open, checked directory: fd for the calls, path for the messages."""

    __slots__ = ("fd", "path")

    def __init__(self, fd: int, path: str):
        self.fd, self.path = fd, path

    def check(self, st: os.stat_result, path: str, *, directory: bool) -> None:
        """What an entry here must be to be used (the store: check_owned)."""
        check_owned(st, path, directory=directory)

    @classmethod
    def root(cls, path: str, *, create: bool) -> Dir:
        """<dest> itself (links in the path the user gave are followed): nobody but its owner may replace
        its entries, unless it has the sticky bit (like /tmp: others may add, not move, entries)."""
        if create:
            os.makedirs(path, 0o755, exist_ok=True)
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        st = os.fstat(fd)
        if st.st_mode & OTHERS_WRITE and not st.st_mode & stat.S_ISVTX:
            os.close(fd)
            raise writable_refused(path, st)
        return cls(fd, path)

    def sub(self, name: str, *, create: int | None = None) -> Dir:
        """The directory `name` here, checked; with create=MODE it is made (MODE, less the umask) when missing.
        Raises FileNotFoundError when it is missing and not created."""
        if create is not None:
            with contextlib.suppress(FileExistsError):
                os.mkdir(name, create, dir_fd=self.fd)
        try:
            fd = os.open(name, DIR_FLAGS, dir_fd=self.fd)
        except OSError as exc:
            raise _refusal(exc, self, name, directory=True) from None
        path = os.path.join(self.path, name)
        try:
            self.check(os.fstat(fd), path, directory=True)
        except BaseException:
            os.close(fd)
            raise
        return type(self)(fd, path)

    def open(self, name: str, flags: int, mode: int = 0o600) -> int:
        """A file descriptor of the regular file `name` here, never through a link; O_CREAT | O_EXCL
        creates it (mode less the umask). An existing file must be this user's and not writable by others."""
        try:
            fd = os.open(name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=self.fd)
        except OSError as exc:
            raise _refusal(exc, self, name, directory=False) from None
        if not flags & os.O_EXCL:
            try:
                self.check(os.fstat(fd), os.path.join(self.path, name), directory=False)
            except BaseException:
                os.close(fd)
                raise
        return fd

    def read(self, name: str, limit: int = -1) -> bytes | None:
        """The bytes (at most limit) of the regular file `name` here, or None when it does not exist."""
        try:
            fd = self.open(name, os.O_RDONLY)
        except FileNotFoundError:
            return None
        with os.fdopen(fd, "rb") as handle:
            return handle.read(limit)

    def lstat(self, name: str) -> os.stat_result:
        return os.stat(name, dir_fd=self.fd, follow_symlinks=False)

    def names(self) -> list[str]:
        return os.listdir(self.fd)

    def entries(self) -> list[os.DirEntry]:
        """The entries here (DirEntry.stat() and the name work relative to this directory)."""
        with os.scandir(self.fd) as found:
            return list(found)

    def subdirs(self) -> list[str]:
        """Names of the directories here, sorted; a link among them is refused (it would lead out)."""
        names = []
        for entry in self.entries():
            if entry.is_symlink():
                raise link_refused(os.path.join(self.path, entry.name))
            names.append(entry.name)
        return sorted(names)

    def unlink(self, name: str) -> bool:
        """Remove the entry `name` (a link itself, never its target); False when it was not there."""
        try:
            os.unlink(name, dir_fd=self.fd)
            return True
        except FileNotFoundError:
            return False

    def remove_tree(self, name: str) -> None:
        """Remove `name` and everything under it through directory descriptors: a link anywhere inside
        is removed, never followed (shutil.rmtree's fd-based walk, which refuses a link at the top)."""
        try:
            if stat.S_ISDIR(self.lstat(name).st_mode):
                shutil.rmtree(name, dir_fd=self.fd)
            else:
                self.unlink(name)
        except FileNotFoundError:
            pass

    def fsync(self) -> None:
        try:
            os.fsync(self.fd)
        except OSError as exc:  # some network filesystems refuse fsync on directories
            if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
                raise

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Dir:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def regular_files(root: Dir) -> dict[str, os.stat_result]:
    """lstat of every regular file under root by its POSIX path there, through directory descriptors; a link or a
    special file anywhere is refused by the directory's own check (Dir.check: UnsafeStore, TreeRefused)."""
    found: dict[str, os.stat_result] = {}

    def scan(folder: Dir, prefix: str) -> None:
        for entry in folder.entries():
            st = entry.stat(follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                with folder.sub(entry.name) as sub:
                    scan(sub, f"{prefix}{entry.name}/")
            elif stat.S_ISREG(st.st_mode):
                found[prefix + entry.name] = st
            else:
                folder.check(st, os.path.join(folder.path, entry.name), directory=False)

    scan(root, "")
    return found


class TreeRefused(JobFailed):
    """Something in a tree modelsync only reads (the S3 Files mount) that it will not follow or read (exit 1)."""


class TreeDir(Dir):
    """A directory of a tree modelsync reads but does not own (the bucket's S3 Files mount): reached and read the
    same way, links and special files refused, but owner and modes are the file system's, not checked."""

    __slots__ = ()

    @classmethod
    def root(cls, path: str, *, create: bool = False) -> TreeDir:
        return cls(os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC), path)

    def check(self, st: os.stat_result, path: str, *, directory: bool) -> None:
        if stat.S_ISLNK(st.st_mode):
            raise TreeRefused(
                f"{path} is a symbolic link, which modelsync never follows in the bucket tree (it could lead out of "
                "the mount): remove the object that makes it and check the bucket"
            )
        if not (stat.S_ISDIR(st.st_mode) if directory else stat.S_ISREG(st.st_mode)):
            raise TreeRefused(
                f"{path} should be a {'directory' if directory else 'regular file'} and is not: check the bucket's "
                "objects at that key"
            )

    def open(self, name: str, flags: int, mode: int = 0o600) -> int:
        return super().open(name, flags | os.O_NONBLOCK, mode)  # a FIFO must not block before it is refused


@dataclass(frozen=True)
class Slot:
    """A name in an open directory: where one file is, or will be."""

    dir: Dir
    name: str

    @property
    def path(self) -> str:
        return os.path.join(self.dir.path, self.name)

    def create(self, mode: int, flags: int = os.O_RDWR) -> int:
        return self.dir.open(self.name, flags | os.O_CREAT | os.O_EXCL, mode)

    def open(self, flags: int) -> int:
        return self.dir.open(self.name, flags)

    def unlink(self) -> bool:
        return self.dir.unlink(self.name)

    def move_to(self, target: Slot) -> None:
        """Rename over target atomically; neither side follows a link (a link at target is replaced)."""
        os.replace(self.name, target.name, src_dir_fd=self.dir.fd, dst_dir_fd=target.dir.fd)


class Subdirs:
    """The directories of one tree (a version directory) opened once each while files are placed in it
    by several threads; made 0755 when missing. Close it to close them all."""

    def __init__(self, root: Dir, *, create: bool):
        self.root, self.create = root, create
        self._open: dict[str, Dir] = {"": root}
        self._lock = threading.Lock()

    def slot(self, relpath: str) -> Slot:
        """The Slot of a file at relpath (POSIX, relative to the root); its folders are opened (made)."""
        folder, _, name = relpath.rpartition("/")
        return Slot(self.folder(folder), name)

    def folder(self, relpath: str) -> Dir:
        with self._lock:
            return self._folder(relpath)

    def _folder(self, relpath: str) -> Dir:
        found = self._open.get(relpath)
        if found is None:
            parent, _, name = relpath.rpartition("/")
            found = self._open[relpath] = self._folder(parent).sub(name, create=0o755 if self.create else None)
        return found

    def opened(self) -> list[Dir]:
        return list(self._open.values())

    def remove_empty(self) -> None:
        """Remove the folders opened below the root that are empty, deepest first."""
        for relpath in sorted(self._open, key=lambda p: p.count("/"), reverse=True):
            if relpath:
                parent, _, name = relpath.rpartition("/")
                with contextlib.suppress(OSError):
                    os.rmdir(name, dir_fd=self._open[parent].fd)

    def close(self) -> None:
        for found in self._open.values():
            found.close()
        self._open.clear()
