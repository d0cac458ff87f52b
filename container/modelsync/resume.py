"""Resumable downloads of big files: a partial file and a journal of the parts already written.

    <dest>/.modelsync/partial/<host>.<pid>.<random>.part     the file being downloaded (full size, sparse)
    <dest>/.modelsync/partial/<host>.<pid>.<random>.ranges   "sha256 size part_size", then one part index a line

A part's index is appended only after all its bytes were written to the partial file. The journal is
a hint and is never trusted: before the file is renamed into a version, its sha256 is computed over
every byte on disk, resumed parts included, so a wrong journal (a crash of the machine with
unwritten pages, a file changed by hand) costs a fresh download, never a wrong file. So the journal
needs no fsync; a killed process (SIGKILL, OOM) loses nothing the kernel already has.

A pull that is stopped (SIGTERM/SIGINT), killed, or gives up on the network keeps both files; the
next pull on this host whose file has that sha256, size and part size claims them by renaming the
journal (atomic: of two pulls racing for it, one wins) and downloads only the parts not listed.
Both files are opened without following links and must be regular files of this user (storefs.py):
a planted link or someone else's file is refused, never written through.
Partials whose owner is gone and that nobody claimed within a day are removed by `clean_stale`.
"""

from __future__ import annotations

import os
import threading
import time

from .storefs import Dir, Slot, check_owned

STALE_SECONDS = 24 * 3600


class PartJournal:
    def __init__(self, folder: Dir, stem: str, sha256: str, size: int, part_size: int, done: set[int]):
        self.ranges, self.data = Slot(folder, stem + ".ranges"), Slot(folder, stem + ".part")
        self.sha256, self.size, self.part_size = sha256, size, part_size
        self.done = done
        self._fd: int | None = None
        self._lock = threading.Lock()

    @classmethod
    def create(cls, store, sha256: str, size: int, part_size: int) -> PartJournal:
        """A new journal and its (empty) data file, both created here (O_EXCL)."""
        journal = cls(store.partial_dir(), _stem(store), sha256, size, part_size, set())
        with os.fdopen(journal.ranges.create(0o600, os.O_WRONLY), "w") as handle:
            handle.write(f"{sha256} {size} {part_size}\n")
        os.close(journal.data.create(0o644))
        return journal

    @classmethod
    def read(cls, folder: Dir, stem: str) -> PartJournal | None:
        """The journal <stem>.ranges, or None when it is gone or unreadable; UnsafeStore when it is a link
        or someone else's file."""
        journal = cls(folder, stem, "", 0, 0, set())
        try:
            with os.fdopen(journal.ranges.open(os.O_RDONLY)) as handle:
                header, *lines = handle.read().split("\n")
            sha256, size, part_size = header.split()
        except (OSError, ValueError):
            return None
        journal.sha256, journal.size, journal.part_size = sha256, int(size), int(part_size)
        journal.done = {int(line) for line in lines[:-1] if line.isdigit()}  # a torn last line is ignored
        return journal

    def open_data(self) -> int:
        """The data file, read-write: it exists (created, or claimed by rename) and is never a link."""
        return self.data.open(os.O_RDWR)

    def mark(self, index: int) -> None:
        """Record that part `index` is written (called after its last byte was written)."""
        with self._lock:
            if self._fd is None:
                self._fd = self.ranges.open(os.O_WRONLY | os.O_APPEND)
            os.write(self._fd, f"{index}\n".encode())
            self.done.add(index)

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def remove(self) -> None:
        """Drop the partial download: the data first, so a journal never outlives its data unnoticed."""
        self.close()
        self.data.unlink()
        self.ranges.unlink()

    def kept_bytes(self) -> int:
        return min(self.size, len(self.done) * self.part_size)


def claim(store, sha256: str, size: int, part_size: int) -> PartJournal | None:
    """Take over a partial download of this content left by a process that is gone, or None."""
    folder = store.partial_dir()
    for entry in _entries(folder, ".ranges"):
        if not store.owner_is_gone(entry):
            continue
        stem = entry.name[: -len(".ranges")]
        found = PartJournal.read(folder, stem)
        if found is None or (found.sha256, found.size, found.part_size) != (sha256, size, part_size):
            continue
        try:  # the data file must be ours before we take it: never write through a planted link
            check_owned(folder.lstat(found.data.name), found.data.path, directory=False)
        except FileNotFoundError:
            continue
        claimed = PartJournal(folder, _stem(store), sha256, size, part_size, found.done)
        try:
            found.ranges.move_to(claimed.ranges)  # the claim: only one process can win it
        except FileNotFoundError:
            continue
        try:
            found.data.move_to(claimed.data)
        except FileNotFoundError:
            claimed.ranges.unlink()
            continue
        return claimed
    return None


def clean_stale(store) -> int:
    """Remove partial downloads nobody can resume: owner gone and older than a day, or no journal."""
    try:
        folder = store.partial_dir()
    except FileNotFoundError:
        return 0
    removed = 0
    entries = _entries(folder, "")
    names = {e.name for e in entries}
    for entry in entries:
        if not store.owner_is_gone(entry):
            continue
        stem, _, suffix = entry.name.rpartition(".")
        partner = f"{stem}.{'part' if suffix == 'ranges' else 'ranges'}"
        try:
            old = time.time() - entry.stat(follow_symlinks=False).st_mtime > STALE_SECONDS
        except FileNotFoundError:
            continue
        if (old or partner not in names) and folder.unlink(entry.name):
            removed += 1
    return removed


def _stem(store) -> str:
    return store.temp_name()[: -len(".part")]


def _entries(folder: Dir, suffix: str) -> list[os.DirEntry]:
    return [e for e in folder.entries() if e.name.endswith(suffix)]
