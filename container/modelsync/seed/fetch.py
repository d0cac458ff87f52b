"""HTTP GETs with retries, and streaming downloads verified by size and digest.

Only the standard library: the seeding image should not need another HTTP client. Retries cover
what a public service such as Zenodo answers under load (429, 5xx, dropped connections); a
Retry-After header wins over our own backoff, capped so a bad header cannot stall a run.
"""

from __future__ import annotations

import email.utils
import hashlib
import http.client
import json
import logging
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from modelsync import __version__
from modelsync.backoff import delay as jittered_delay
from modelsync.errors import ModelsyncError

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
# The only hosts plain http is accepted for (local test servers), compared exactly.
_LOCAL_NETLOC = re.compile(r"(?:127\.0\.0\.1|localhost|\[::1\])(?::[0-9]{1,5})?", re.IGNORECASE)
CHUNK_SIZE = 1024 * 1024
USER_AGENT = f"modelsync/{__version__} (+seed)"


class HttpStatusError(ModelsyncError):
    """A final, non-retryable HTTP answer (for example 404). `status` lets callers add context."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


class DigestMismatch(ModelsyncError):
    """The downloaded bytes are not the ones the source promised."""


class DownloadTooLarge(ModelsyncError):
    """The source announces or sends more than the download cap; nothing is kept."""


def is_local_http(url: str) -> bool:
    """True for http:// URLs whose host is exactly 127.0.0.1, localhost or [::1], with an optional
    port: not a prefix (http://localhost.attacker.example/), no user part (http://127.0.0.1@x/). The
    netloc is matched whole because urlsplit reads http://[::1].attacker.example/ as host ::1."""
    parts = urllib.parse.urlsplit(url)
    return parts.scheme == "http" and _LOCAL_NETLOC.fullmatch(parts.netloc) is not None


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 6  # total tries per request
    backoff_seconds: float = 1.0  # first wait; doubles each time, with jitter
    max_wait_seconds: float = 120.0  # cap for both our backoff and Retry-After
    timeout_seconds: float = 60.0  # socket timeout (connect and each read)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class HttpFetcher:
    """GET JSON documents and files with retries. `sleep` is injectable so tests can record
    the waits instead of spending them."""

    def __init__(self, policy: RetryPolicy | None = None, *, sleep: Callable[[float], None] = time.sleep):
        self.policy = policy or RetryPolicy()
        self._sleep = sleep

    # -- public ---------------------------------------------------------------------------------

    def get_json(self, url: str, *, what: str):
        """GET `url` and parse it as JSON; `what` names the thing in error messages."""

        def read(response):
            body = response.read()
            try:
                return json.loads(body)
            except ValueError:
                raise ModelsyncError(
                    f"{what}: {url} did not answer with JSON; check the base URL (ZENODO_URL)"
                ) from None

        return self._with_retries(url, what, read, headers={"Accept": "application/json"})

    def download(
        self,
        url: str,
        dest: Path,
        *,
        what: str,
        algorithm: str,
        expected_digest: str,
        expected_size: int | None = None,
        max_bytes: int | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> int:
        """Stream `url` into `dest`, checking size and digest. The bytes go to a temporary file
        next to `dest` that is renamed into place only after both checks pass, so `dest` is either
        complete and verified or absent. Returns the number of bytes.

        `max_bytes` caps the download: a larger `expected_size` or Content-Length is refused before
        reading, and a body that goes on past the cap is cut off there (DownloadTooLarge)."""
        dest = Path(dest)
        part = dest.with_name(f".{dest.name}.part")
        if max_bytes is not None and expected_size is not None and expected_size > max_bytes:
            raise DownloadTooLarge(
                f"{what}: the source lists {expected_size} bytes, more than the download cap of {max_bytes} bytes"
            )

        def stream(response) -> int:
            announced = getattr(response, "length", None)
            if max_bytes is not None and announced is not None and announced > max_bytes:
                raise DownloadTooLarge(
                    f"{what}: {url} announces {announced} bytes (Content-Length), more than "
                    f"the download cap of {max_bytes} bytes"
                )
            digest = hashlib.new(algorithm, usedforsecurity=False)
            size = 0
            limit = max_bytes + 1 if max_bytes is not None else None  # one byte over proves the body is too long
            with _open_for_writing(part) as out:
                # network errors in read() are retried
                while chunk := response.read(CHUNK_SIZE if limit is None else min(CHUNK_SIZE, limit - size)):
                    _write(out, chunk, part)
                    digest.update(chunk)
                    size += len(chunk)
                    if expected_size is not None and size > expected_size:
                        break  # no point reading on: the size check below fails
                    if progress:
                        progress(len(chunk))
                    if limit is not None and size >= limit:
                        raise DownloadTooLarge(
                            f"{what}: {url} sent more than the download cap of {max_bytes} "
                            f"bytes; stopped there and deleted the partial file"
                        )
            if expected_size is not None and size > expected_size:
                raise DigestMismatch(
                    f"{what}: got more than the {expected_size} bytes the source lists; "
                    f"the source changed or the download is corrupt: re-run the seed"
                )
            if getattr(response, "length", None):  # http.client returns b"" on an early close
                raise _Retryable(f"connection closed after {size} bytes, {response.length} short")
            if expected_size is not None and size < expected_size:
                raise _Retryable(f"connection closed after {size} of {expected_size} bytes")
            got = digest.hexdigest()
            if got != expected_digest.lower():
                raise DigestMismatch(
                    f"{what}: {algorithm} mismatch (expected {expected_digest.lower()}, got {got}); "
                    f"the file is corrupt or the source changed: re-run the seed, and if it persists "
                    f"check the catalog entry"
                )
            return size

        try:
            size = self._with_retries(url, what, stream)
            os.replace(part, dest)
            return size
        finally:
            part.unlink(missing_ok=True)

    # -- retries --------------------------------------------------------------------------------

    def _with_retries(self, url: str, what: str, handle, *, headers: dict | None = None):
        policy = self.policy
        last_problem = ""
        for attempt in range(1, policy.attempts + 1):
            retry_after = None
            try:
                request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, **(headers or {})})
                with urllib.request.urlopen(request, timeout=policy.timeout_seconds) as response:
                    return handle(response)
            except urllib.error.HTTPError as err:
                err.close()
                if err.code not in RETRY_STATUSES:
                    raise HttpStatusError(f"{what}: HTTP {err.code} from {url}", err.code) from None
                last_problem = f"HTTP {err.code}"
                retry_after = parse_retry_after(err.headers.get("Retry-After") if err.headers else None)
            except urllib.error.URLError as err:
                last_problem = str(err.reason)
            except (_Retryable, ConnectionError, TimeoutError) as err:
                last_problem = str(err) or type(err).__name__
            except (OSError, http.client.HTTPException) as err:  # IncompleteRead, resets
                last_problem = str(err) or type(err).__name__
            if attempt == policy.attempts:
                break
            wait = self._wait_seconds(attempt, retry_after)
            log.warning("%s: %s; retry %d of %d in %.1f s", what, last_problem, attempt, policy.attempts - 1, wait)
            self._sleep(wait)
        host = urllib.parse.urlsplit(url).netloc
        raise ModelsyncError(
            f"{what}: {url} failed {policy.attempts} times (last: {last_problem}); "
            f"check network access to {host} from the task (NAT or egress rules) and the "
            f"configured URL (ZENODO_URL for Zenodo), then re-run the seed"
        )

    def _wait_seconds(self, attempt: int, retry_after: float | None) -> float:
        policy = self.policy
        if retry_after is not None:
            return min(retry_after, policy.max_wait_seconds)
        return jittered_delay(attempt, first=policy.backoff_seconds, cap=policy.max_wait_seconds)


class _Retryable(Exception):
    """A transient problem found while reading a response body."""


class LocalWriteError(ModelsyncError):
    """The download could not be written locally (full disk, permissions): not worth a retry."""


def _open_for_writing(path: Path):
    try:
        # Unbuffered: a full disk shows up in _write, not later in a close() the retry loop would catch.
        return open(path, "wb", buffering=0)
    except OSError as err:
        raise LocalWriteError(
            f"cannot write {path} ({err.strerror}); check the scratch directory (--workdir)"
        ) from None


def _write(out, chunk: bytes, path: Path) -> None:
    view = memoryview(chunk)
    try:
        while view:
            view = view[out.write(view) :]
    except OSError as err:
        raise LocalWriteError(
            f"cannot write {path} ({err.strerror}); free disk space for the seeding task or point "
            f"--workdir at a larger volume"
        ) from None
