"""Graceful stop: SIGTERM and SIGINT end every command promptly and cleanly.

ECS stops a task with SIGTERM and sends SIGKILL when the stop timeout has passed; a Python process
that runs as PID 1 without a handler ignores SIGTERM, so every stop used to wait the whole timeout.
`install()` (called by the CLI) turns the first signal into `Stopped`, raised in the main thread
wherever it waits, and sets one event that worker threads check between chunks, so transfers end
within a chunk. Everything on disk is already safe against SIGKILL (temp files, verify before
rename, record and link written last), so unwinding from any point leaves the previous version
linked and no partial file visible; `finally` blocks then remove temp files, pins and locks.
"""

from __future__ import annotations

import signal
import threading

_requested = threading.Event()
_signal_number: int | None = None


class Stopped(BaseException):
    """The process was asked to stop. A BaseException, like KeyboardInterrupt, so the handlers that
    collect per-file or per-model failures (`except Exception`) do not swallow it."""

    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(f"stopped by {signal.Signals(signum).name}")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # the shell's convention: 143 for SIGTERM, 130 for SIGINT


def _handle(signum, _frame) -> None:
    global _signal_number
    if _requested.is_set():
        return  # a second signal must not interrupt the clean-up of the first
    _signal_number = signum
    _requested.set()
    raise Stopped(signum)


def install() -> None:
    """Route SIGTERM and SIGINT to `Stopped` (main thread only, as Python requires)."""
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _handle)


def requested() -> bool:
    return _requested.is_set()


def check() -> None:
    """Raise Stopped in a worker thread once a stop was requested (called between chunks)."""
    if _requested.is_set():
        raise Stopped(_signal_number or signal.SIGTERM)
