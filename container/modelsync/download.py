"""Parallel verified downloads: many files at once, big files as parallel byte ranges.

Each file goes to a unique temp file (caller's choice of name, same filesystem as its target),
is checked against size and sha256, fsynced when the destination must survive the machine
(`durable`), and only then handed back for the rename. Bodies are read straight from the socket into
one reused buffer per thread and written with a loop that fails loudly instead of leaving a hole: the
bytes hashed are the bytes written. Big files can resume from a PartJournal (resume.py).
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import os
import threading
import time
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

import botocore.exceptions as bx
import urllib3.exceptions

from . import stop
from .backoff import delay as jittered_delay
from .config import DEFAULT_DOWNLOAD_ATTEMPTS
from .errors import JobFailed
from .manifest import FileEntry
from .progress import Progress, or_silent
from .resume import PartJournal
from .s3 import is_not_found, translate_client_error
from .storefs import Slot

CHUNK = 1024 * 1024
# Bodies are read and written through a buffer this small so it stays in the CPU cache between the
# socket read, the write and the hash: with 1 MiB buffers (16 threads) the kernel's copy into the
# page cache ran from memory and took twice the system time (measured: docs/benchmark-history.md).
READ_BUFFER = 64 * 1024
PROGRESS_STEP = 1024 * 1024
# Failures of the connection or of the body stream: botocore retries the request but not a body
# that breaks half-way, so we retry those ourselves.
TRANSIENT = (
    bx.IncompleteReadError,
    bx.ResponseStreamingError,
    bx.ReadTimeoutError,
    bx.ConnectTimeoutError,
    bx.ConnectionClosedError,
    bx.EndpointConnectionError,
    urllib3.exceptions.HTTPError,
    http.client.HTTPException,  # IncompleteRead from the socket-level reads
    ConnectionError,
    TimeoutError,
)


class ChecksumMismatch(Exception):
    def __init__(self, path: str, expected: str, actual: str):
        super().__init__(f"{path}: sha256 {actual} does not match the manifest's {expected}")
        self.path, self.expected, self.actual = path, expected, actual


class BrokenObject(Exception):
    """The object is missing or not the size its manifest says: its version is broken in the bucket."""

    def __init__(self, key: str, problem: str):
        super().__init__(f"{key} {problem}")
        self.key, self.problem = key, problem


class _ShortBody(Exception):
    pass


class TransferFailed(JobFailed):
    """The network kept failing: what was written so far may be resumed by the next pull."""


def write_all(fd: int, data: memoryview, offset: int) -> None:
    """pwrite every byte or raise: a short write (a nearly full disk, a file size limit) is
    continued, and a write that makes no progress is ENOSPC, never a silent hole."""
    while data:
        written = os.pwrite(fd, data, offset)
        if written <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        data, offset = data[written:], offset + written


class _InOrderHasher:
    """sha256 of a file whose byte ranges arrive in any order: whichever range worker finishes
    the next missing range hashes forward from the page cache, so hashing overlaps the download
    and little is left to hash when the last range lands. It hashes the bytes on disk, so resumed
    parts are checked like downloaded ones."""

    def __init__(self, fd: int, starts: list[int], size: int, buffer):
        self.fd, self.starts, self.size, self.buffer = fd, starts, size, buffer
        self.digest = hashlib.sha256()
        self.done = [False] * len(starts)
        self.next = 0
        self.busy = False
        self.lock = threading.Lock()

    def completed(self, index: int) -> None:
        with self.lock:
            self.done[index] = True
            if self.busy:
                return  # the thread already hashing will pick this range up
            self.busy = True
        try:
            while True:
                with self.lock:
                    if self.next >= len(self.starts) or not self.done[self.next]:
                        self.busy = False
                        return
                    index, self.next = self.next, self.next + 1
                self._hash(self.starts[index], self.starts[index + 1] if index + 1 < len(self.starts) else self.size)
        except BaseException:
            with self.lock:
                self.busy = False
            raise

    def _hash(self, start: int, end: int) -> None:
        view = self.buffer()
        while start < end:
            stop.check()
            count = os.preadv(self.fd, [view[: min(len(view), end - start)]], start)
            if not count:
                raise OSError(errno.EIO, f"short read while hashing at offset {start}")
            self.digest.update(view[:count])
            start += count

    def hexdigest(self) -> str:
        if self.next != len(self.starts):
            raise RuntimeError("hexdigest before every range was hashed")
        return self.digest.hexdigest()


class Downloader:
    """Fetches objects into local files; one instance serves a whole pull."""

    def __init__(
        self,
        client,
        bucket: str,
        *,
        concurrency: int,
        part_size: int,
        progress: Progress | None = None,
        attempts: int = DEFAULT_DOWNLOAD_ATTEMPTS,
        backoff: float = 0.2,
        max_backoff: float = 5.0,
        durable: bool = True,
    ):
        self.client = client
        self.bucket = bucket
        self.part_size = max(part_size, CHUNK)
        self.progress = or_silent(progress)
        self.attempts = attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.durable = durable
        # Range workers are separate from file workers so a file waiting on its ranges never
        # occupies the thread one of its ranges needs.
        self.ranges = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="range")
        # At most `concurrency` GETs in flight across file and range workers together.
        self.slots = threading.BoundedSemaphore(concurrency)
        self._local = threading.local()

    def close(self) -> None:
        self.ranges.shutdown(wait=True, cancel_futures=True)

    def _buffer(self) -> memoryview:
        """This thread's read buffer: memory stays at 64 KiB per thread whatever the file sizes."""
        view = getattr(self._local, "view", None)
        if view is None:
            view = self._local.view = memoryview(bytearray(READ_BUFFER))
        return view

    def fetch(self, key: str, entry: FileEntry, temp: Slot, journal: PartJournal | None = None) -> None:
        """Download key into temp (created here, exclusively, never through a link) and verify it.

        With a journal (files bigger than one part), temp is the journal's data file: the
        parts it lists are kept, the others downloaded, and each part is recorded once written.
        Raises ChecksumMismatch (temp file and journal removed), BrokenObject, TransferFailed or
        JobFailed; the temp file is removed on every failure, except that a journaled file
        interrupted by a stop or a network failure is kept for the next pull (resume.py)."""
        # A journal's data file exists, with a name only this process uses (created or claimed by rename).
        fd = temp.create(0o644) if journal is None else journal.open_data()
        ok = keep = False
        size = -1
        try:
            if entry.size <= self.part_size:
                digest = self._get_range(key, fd, 0, entry.size, entry.size, hash_it=True)
            else:
                if os.fstat(fd).st_size != entry.size:
                    os.ftruncate(fd, entry.size)
                digest = self._get_ranges(key, fd, entry.size, journal)
            if self.durable:
                os.fsync(fd)
            size = os.fstat(fd).st_size
            ok = True
        except (stop.Stopped, TransferFailed):
            keep = journal is not None
            raise
        finally:
            os.close(fd)
            if journal is not None:
                journal.close()
            if not ok and not keep:
                if journal is not None:
                    journal.remove()
                temp.unlink()
        if digest != entry.sha256 or size != entry.size:
            temp.unlink()
            if journal is not None:
                journal.remove()
            raise ChecksumMismatch(entry.path, entry.sha256, str(digest))

    def _get_ranges(self, key: str, fd: int, size: int, journal: PartJournal | None) -> str:
        starts = list(range(0, size, self.part_size))
        hasher = _InOrderHasher(fd, starts, size, self._buffer)
        kept = set(journal.done) if journal else set()

        def one(index: int, start: int) -> None:
            self._get_range(key, fd, start, min(self.part_size, size - start), size, False)
            if journal is not None:
                journal.mark(index)  # after its last byte was written
            hasher.completed(index)

        futures = [self.ranges.submit(one, i, start) for i, start in enumerate(starts) if i not in kept]
        try:
            for index in sorted(kept):  # hashed from disk here while the missing parts download
                self.progress.advance(min(self.part_size, size - starts[index]))
                hasher.completed(index)
        finally:
            done, pending = wait(futures, return_when=FIRST_EXCEPTION)
            for future in pending:
                future.cancel()
            wait(pending)
        for future in futures:
            error = future.exception() if future.done() and not future.cancelled() else None
            if error is not None:
                raise error
        return hasher.hexdigest()

    def _get_range(self, key: str, fd: int, start: int, length: int, size: int, hash_it: bool) -> str | None:
        """GET bytes [start, start+length) of an object of `size` bytes into fd at start; retries
        broken transfers with backoff."""
        last_error: Exception | None = None
        for attempt in range(1, self.attempts + 1):
            digest = hashlib.sha256() if hash_it else None
            try:
                if length == 0:
                    return digest.hexdigest() if digest else None
                with self.slots:
                    response = self.client.get_object(
                        Bucket=self.bucket, Key=key, Range=f"bytes={start}-{start + length - 1}"
                    )
                    stored = response.get("ContentRange", "").rpartition("/")[2]
                    if stored.isdigit() and int(stored) != size:  # not a network problem: don't retry
                        response["Body"].close()
                        raise BrokenObject(key, f"has {stored} bytes but its manifest says {size}")
                    self._read_body(response, fd, start, length, digest)
                return digest.hexdigest() if digest else None
            except bx.ClientError as exc:
                if is_not_found(exc):
                    raise BrokenObject(key, "is missing") from None
                if exc.response.get("Error", {}).get("Code") == "InvalidRange":
                    raise BrokenObject(key, f"is shorter than the {size} bytes its manifest says") from None
                # botocore has already retried throttling and 5xx with backoff: give up cleanly.
                raise translate_client_error(exc, bucket=self.bucket, key=key) from None
            except (*TRANSIENT, _ShortBody) as exc:
                last_error = exc
                if attempt < self.attempts:
                    delay = jittered_delay(attempt, first=self.backoff, cap=self.max_backoff)
                    self.progress.event(
                        "retry", key=key, attempt=attempt, error=str(exc)[:200], message=f"retrying {key} after: {exc}"
                    )
                    time.sleep(delay)
        raise TransferFailed(
            f"downloading s3://{self.bucket}/{key} failed after {self.attempts} attempts "
            f"({last_error}): check the network or the endpoint and pull again"
        )

    def _read_body(self, response, fd: int, start: int, length: int, digest) -> int:
        """Copy the body into fd at start: read from the socket into this thread's buffer, write all
        of it, then hash it (so only written bytes are hashed). Returns the bytes written; on any
        error, takes back the progress it reported (the range is fetched again whole)."""
        body = response["Body"]
        declared = response.get("ContentLength")
        raw = getattr(body, "_raw_stream", None)
        # http.client's own readinto fills our buffer straight from the socket; urllib3's read()
        # would allocate and copy each chunk. Any other body type goes through read().
        readinto = getattr(getattr(raw, "_fp", None), "readinto", None)
        view = self._buffer()
        pwrite, requested = os.pwrite, stop.requested
        written = unreported = 0
        try:
            if declared is not None and declared != length:
                raise _ShortBody(f"the server sent {declared} bytes for a range of {length}")
            while written < length:
                if requested():
                    stop.check()  # a stopping task ends its transfers within a chunk
                want = view[: min(len(view), length - written)]
                if readinto is not None:
                    count = readinto(want)
                else:
                    data = body.read(len(want))
                    count = len(data)
                    want[:count] = data
                if not count:
                    raise _ShortBody(f"got {written} of {length} bytes")
                chunk = view[:count] if count < len(want) else want
                done = pwrite(fd, chunk, start + written)
                if done != count:  # a short write: finish it, or fail loudly
                    write_all(fd, chunk[done:], start + written + done)
                if digest:
                    digest.update(chunk)
                written += count
                unreported += count
                if unreported >= PROGRESS_STEP:
                    self.progress.advance(unreported)
                    unreported = 0
            self.progress.advance(unreported)
        except BaseException:
            self.progress.advance(unreported - written)
            body.close()  # drops the connection: it may still hold unread bytes
            raise
        if raw is not None and hasattr(raw, "release_conn"):
            raw.release_conn()  # the body was read to its end: the connection can be reused
        return written
