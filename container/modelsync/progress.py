"""Progress: a bar with rate on a terminal, one-line JSON events otherwise (CloudWatch)."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import Counter

MIB = 1024 * 1024


def mib_per_s(nbytes: int, seconds: float) -> float:
    return round(nbytes / MIB / seconds, 1) if seconds > 0 else 0.0


def human_bytes(nbytes: int) -> str:
    value = float(nbytes)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{nbytes} B"


class Progress:
    """Thread-safe progress reporter. mode: 'bar', 'json' or 'quiet' (None = bar on a tty, else json)."""

    def __init__(self, stream=None, mode: str | None = None, interval: float | None = None):
        self.stream = stream or sys.stderr
        if mode is None:
            mode = "bar" if getattr(self.stream, "isatty", lambda: False)() else "json"
        self.mode = mode
        self.interval = interval if interval is not None else (0.1 if mode == "bar" else 2.0)
        self._lock = threading.Lock()
        self._label = ""
        self._total = 0
        self._done = 0
        self._started = time.monotonic()
        self._last_emit = 0.0
        # Events by kind ("retry", "error", ...), whatever the mode: the job's metrics count them.
        self.counts: Counter[str] = Counter()
        self._counts_lock = threading.Lock()

    def event(self, kind: str, **fields) -> None:
        with self._counts_lock:
            self.counts[kind] += 1
        if self.mode == "json":
            self._write(json.dumps({"event": kind, **fields}, sort_keys=True) + "\n")
        elif self.mode == "bar" and kind in ("error", "retry", "warning"):
            self._write(f"\r\x1b[K{kind}: {fields.get('message', fields)}\n")

    def begin(self, label: str, total_bytes: int, **fields) -> None:
        with self._lock:
            self._label, self._total, self._done = label, total_bytes, 0
            self._started = time.monotonic()
            self._last_emit = 0.0
        self.event("start", label=label, bytes=total_bytes, **fields)

    def advance(self, nbytes: int) -> None:
        with self._lock:
            self._done += nbytes
            now = time.monotonic()
            if now - self._last_emit < self.interval:
                return
            self._last_emit = now
            done, total, elapsed = self._done, self._total, now - self._started
        if self.mode == "bar":
            self._draw(done, total, elapsed)
        elif self.mode == "json":
            self.event(
                "progress", label=self._label, bytes_done=done, bytes_total=total, mib_per_s=mib_per_s(done, elapsed)
            )

    def end(self, **fields) -> None:
        with self._lock:
            done, total, elapsed = self._done, self._total, time.monotonic() - self._started
        if self.mode == "bar":
            self._draw(done, total, elapsed)
            self._write("\n")
        self.event("done", label=self._label, bytes_done=done, seconds=round(elapsed, 3), **fields)

    def _draw(self, done: int, total: int, elapsed: float) -> None:
        fraction = done / total if total else 1.0
        width = 30
        filled = int(width * min(fraction, 1.0))
        bar = "#" * filled + "-" * (width - filled)
        self._write(
            f"\r\x1b[K{self._label} [{bar}] {fraction * 100:5.1f}% "
            f"{human_bytes(done)}/{human_bytes(total)} {mib_per_s(done, elapsed)} MiB/s"
        )

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):
            pass  # a closed or broken stderr must never fail a transfer


class _Silent(Progress):
    def __init__(self):
        super().__init__(stream=sys.stderr, mode="quiet")


def or_silent(progress: Progress | None) -> Progress:
    return progress if progress is not None else _Silent()
