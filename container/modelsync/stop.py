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

import functools
import signal
import threading
from collections.abc import Callable

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


def install(on_stop: Callable[[], None] | None = None) -> None:
    """Route SIGTERM and SIGINT to `Stopped` (main thread only, as Python requires), or, for a command
    whose main thread runs an event loop that would swallow it (serve), to `on_stop()` instead."""
    handler = _handle if on_stop is None else functools.partial(_call, on_stop)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, handler)


def _call(on_stop: Callable[[], None], signum, _frame) -> None:
    global _signal_number
    if not _requested.is_set():
        _signal_number = signum
        _requested.set()
        on_stop()


def signal_name() -> str | None:
    """The signal that asked to stop, e.g. 'SIGTERM' (None while none did)."""
    return signal.Signals(_signal_number).name if _signal_number else None


def requested() -> bool:
    return _requested.is_set()


def check() -> None:
    """Raise Stopped in a worker thread once a stop was requested (called between chunks)."""
    if _requested.is_set():
        raise Stopped(_signal_number or signal.SIGTERM)
