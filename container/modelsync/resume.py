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
Partials whose owner is gone and that nobody claimed within a day are removed by `clean_stale`.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time

STALE_SECONDS = 24 * 3600


class PartJournal:
    def __init__(self, path: str, data_path: str, sha256: str, size: int, part_size: int, done: set[int]):
        self.path, self.data_path = path, data_path
        self.sha256, self.size, self.part_size = sha256, size, part_size
        self.done = done
        self._fd: int | None = None
        self._lock = threading.Lock()

    @classmethod
    def create(cls, store, sha256: str, size: int, part_size: int) -> PartJournal:
        base = os.path.join(store.partial, os.path.basename(store.new_temp_path())[: -len(".part")])
        journal = cls(base + ".ranges", base + ".part", sha256, size, part_size, set())
        os.makedirs(store.partial, exist_ok=True)
        with open(journal.path, "x") as handle:
            handle.write(f"{sha256} {size} {part_size}\n")
        return journal

    @classmethod
    def read(cls, path: str) -> PartJournal | None:
        try:
            with open(path) as handle:
                header, *lines = handle.read().split("\n")
            sha256, size, part_size = header.split()
            done = {int(line) for line in lines[:-1] if line.isdigit()}  # a torn last line is ignored
            return cls(path, path[: -len(".ranges")] + ".part", sha256, int(size), int(part_size), done)
        except (OSError, ValueError):
            return None

    def mark(self, index: int) -> None:
        """Record that part `index` is written (called after its last byte was written)."""
        with self._lock:
            if self._fd is None:
                self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
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
        for path in (self.data_path, self.path):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)

    def kept_bytes(self) -> int:
        return min(self.size, len(self.done) * self.part_size)


def claim(store, sha256: str, size: int, part_size: int) -> PartJournal | None:
    """Take over a partial download of this content left by a process that is gone, or None."""
    for entry in _entries(store, ".ranges"):
        if not store.owner_is_gone(entry):
            continue
        found = PartJournal.read(entry.path)
        if found is None or (found.sha256, found.size, found.part_size) != (sha256, size, part_size):
            continue
        base = os.path.join(store.partial, os.path.basename(store.new_temp_path())[: -len(".part")])
        try:
            os.rename(entry.path, base + ".ranges")  # the claim: only one process can win it
        except FileNotFoundError:
            continue
        try:
            os.rename(found.data_path, base + ".part")
        except FileNotFoundError:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(base + ".ranges")
            continue
        return PartJournal(base + ".ranges", base + ".part", sha256, size, part_size, found.done)
    return None


def clean_stale(store) -> int:
    """Remove partial downloads nobody can resume: owner gone and older than a day, or no journal."""
    removed = 0
    entries = _entries(store, "")
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
        if old or partner not in names:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)
                removed += 1
    return removed


def _entries(store, suffix: str) -> list[os.DirEntry]:
    try:
        return [e for e in os.scandir(store.partial) if e.name.endswith(suffix)]
    except FileNotFoundError:
        return []
