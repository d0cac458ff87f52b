"""Parallel verified downloads: many files at once, big files as parallel byte ranges.

Each file goes to a unique temp file (caller's choice of name, same filesystem as its target),
is checked against size and sha256, fsynced, and only then handed back for the rename.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import threading
import time
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

import botocore.exceptions as bx
import urllib3.exceptions

from . import stop
from .errors import JobFailed
from .manifest import FileEntry
from .progress import Progress, or_silent
from .s3 import is_not_found, translate_client_error

CHUNK = 1024 * 1024
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


class _InOrderHasher:
    """sha256 of a file whose byte ranges arrive in any order: whichever range worker finishes
    the next missing range hashes forward from the page cache, so hashing overlaps the download
    and little is left to hash when the last range lands."""

    def __init__(self, fd: int, starts: list[int], size: int):
        self.fd, self.starts, self.size = fd, starts, size
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
        while True:
            with self.lock:
                if self.next >= len(self.starts) or not self.done[self.next]:
                    self.busy = False
                    return
                index, self.next = self.next, self.next + 1
            start = self.starts[index]
            end = self.starts[index + 1] if index + 1 < len(self.starts) else self.size
            while start < end:
                chunk = os.pread(self.fd, min(CHUNK * 4, end - start), start)
                if not chunk:
                    raise OSError(f"short read while hashing at offset {start}")
                self.digest.update(chunk)
                start += len(chunk)

    def hexdigest(self) -> str:
        if self.next != len(self.starts):
            raise RuntimeError("hexdigest before every range was hashed")
        return self.digest.hexdigest()


class Downloader:
    """Fetches objects into local files; one instance serves a whole pull."""

    def __init__(self, client, bucket: str, *, concurrency: int, part_size: int,
                 progress: Progress | None = None, attempts: int = 5, backoff: float = 0.2,
                 max_backoff: float = 5.0):
        self.client = client
        self.bucket = bucket
        self.part_size = max(part_size, CHUNK)
        self.progress = or_silent(progress)
        self.attempts = attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        # Range workers are separate from file workers so a file waiting on its ranges never
        # occupies the thread one of its ranges needs.
        self.ranges = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="range")
        # At most `concurrency` GETs in flight across file and range workers together.
        self.slots = threading.BoundedSemaphore(concurrency)

    def close(self) -> None:
        self.ranges.shutdown(wait=True, cancel_futures=True)

    def fetch(self, key: str, entry: FileEntry, temp_path: str) -> None:
        """Download key into temp_path (created here, exclusively) and verify it.

        Raises ChecksumMismatch (temp file removed), BrokenObject or JobFailed."""
        fd = os.open(temp_path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        ok = False
        try:
            if entry.size <= self.part_size:
                digest = self._get_range(key, fd, 0, entry.size, entry.size, hash_it=True)
            else:
                os.ftruncate(fd, entry.size)
                digest = self._get_ranges(key, fd, entry.size)
            os.fsync(fd)
            ok = True
        finally:
            os.close(fd)
            if not ok:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(temp_path)
        if digest != entry.sha256 or os.stat(temp_path).st_size != entry.size:
            os.unlink(temp_path)
            raise ChecksumMismatch(entry.path, entry.sha256, digest)

    def _get_ranges(self, key: str, fd: int, size: int) -> str:
        starts = list(range(0, size, self.part_size))
        hasher = _InOrderHasher(fd, starts, size)

        def one(index: int, start: int) -> None:
            self._get_range(key, fd, start, min(self.part_size, size - start), size, False)
            hasher.completed(index)

        futures = [self.ranges.submit(one, i, start) for i, start in enumerate(starts)]
        done, pending = wait(futures, return_when=FIRST_EXCEPTION)
        for future in pending:
            future.cancel()
        wait(pending)
        for future in futures:
            if future.done() and not future.cancelled() and future.exception():
                raise future.exception()
        return hasher.hexdigest()

    def _get_range(self, key: str, fd: int, start: int, length: int, size: int, hash_it: bool) -> str | None:
        """GET bytes [start, start+length) of an object of `size` bytes into fd at start; retries
        broken transfers with backoff."""
        last_error: Exception | None = None
        for attempt in range(1, self.attempts + 1):
            written = 0
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
                        raise BrokenObject(key, f"has {stored} bytes but its manifest says {size}")
                    for chunk in response["Body"].iter_chunks(CHUNK):
                        stop.check()  # a stopping task ends its transfers within a chunk
                        if written + len(chunk) > length:
                            raise _ShortBody(f"more bytes than the {length} asked for")
                        os.pwrite(fd, chunk, start + written)
                        if digest:
                            digest.update(chunk)
                        written += len(chunk)
                        self.progress.advance(len(chunk))
                if written != length:
                    raise _ShortBody(f"got {written} of {length} bytes")
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
                self.progress.advance(-written)
                if attempt < self.attempts:
                    delay = min(self.max_backoff, self.backoff * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)
                    self.progress.event("retry", key=key, attempt=attempt, error=str(exc)[:200],
                                        message=f"retrying {key} after: {exc}")
                    time.sleep(delay)
        raise JobFailed(
            f"downloading s3://{self.bucket}/{key} failed after {self.attempts} attempts "
            f"({last_error}): check the network or the endpoint and pull again"
        )
