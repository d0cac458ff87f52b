"""`serve`: the default app container's small HTTP server (/healthz, /readyz, /models)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .verify import ModelState, verify

READY_CACHE_SECONDS = 5.0  # /readyz is polled often; a size-level verify per poll is wasteful


class ReadinessCache:
    """Cached verification of the model directory, shared by the request threads."""

    def __init__(self, dest: str, models: list[str] | None):
        self.dest, self.models = dest, models
        self._lock = threading.Lock()
        self._checked_at = -1e9
        self._states = []

    def states(self) -> list[ModelState]:
        with self._lock:
            if time.monotonic() - self._checked_at > READY_CACHE_SECONDS:
                try:
                    self._states = verify(self.dest, self.models)
                except Exception as exc:  # an answer (503 naming it), never a dropped connection
                    self._states = [ModelState("*", None, problems=[f"cannot check {self.dest}: {exc}"])]
                self._checked_at = time.monotonic()
            return self._states


def make_server(host: str, port: int, dest: str, models: list[str] | None) -> ThreadingHTTPServer:
    state = ReadinessCache(dest, models)

    class Handler(BaseHTTPRequestHandler):
        server_version = "modelsync"

        def do_GET(self):  # noqa: N802 (http.server naming)
            path = self.path.split("?", 1)[0]
            if path == "/healthz":
                self._send(200, {"status": "ok"})
            elif path == "/readyz":
                problems = [p for s in state.states() for p in s.problems]
                self._send(503 if problems else 200, {"ready": not problems, "problems": problems})
            elif path == "/models":
                self._send(200, [
                    {"name": s.name, "version": s.version, "files": s.files, "size": s.bytes, "ok": not s.problems}
                    for s in state.states() if s.version
                ])
            else:
                self._send(404, {"error": f"no such path {path}: try /healthz, /readyz or /models"})

        def _send(self, status: int, body) -> None:
            data = (json.dumps(body) + "\n").encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, fmt, *args):  # health checks every few seconds would flood the log
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server
