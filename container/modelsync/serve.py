"""`serve`: the default app container's small HTTP server (/healthz, /readyz, /models).

Built to keep answering /healthz when the port sees more than the health check (a slowloris, a
scanner, a stuck client), since a failing health check gets the task replaced:

- one event loop, not a thread per connection: a connection holds a socket and a small buffer
  until its whole request head has arrived, and no thread at all;
- each connection gets `timeout` seconds (10 by default) to send its request head and then to
  take the answer, whatever it trickles in;
- at most `max_connections` are open at once; the next one pushes out the oldest that has not
  finished sending its request (a fresh health check sends its request at once), or, when every
  open connection is already being answered, gets a quick 503;
- the size-level verify behind /readyz and /models runs on one worker thread, cached for 5 s;
- /readyz names models and short problem kinds only: the details (paths, exception text) go to
  the log when they change, not to whoever can reach the port; the `Server` header carries no
  version.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .verify import ModelState, verify

READY_CACHE_SECONDS = 5.0  # /readyz is polled often; a size-level verify per poll is wasteful
REQUEST_TIMEOUT_SECONDS = 10.0
MAX_CONNECTIONS = 128
MAX_HEAD_BYTES = 8192  # request line and headers; ours need well under 1 KiB
_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    431: "Request Header Fields Too Large",
    503: "Service Unavailable",
}


class ReadinessCache:
    """Cached verification of the model directory (one check at a time, on the worker thread)."""

    def __init__(self, dest: str, models: list[str] | None, log=None, *, store: str = "local"):
        self.dest, self.models, self.store = dest, models, store
        self.log = log or _log_to_stderr
        self._lock = threading.Lock()
        self._checked_at = -1e9
        self._states: list[ModelState] = []
        self._logged: list[str] | None = None

    def states(self) -> list[ModelState]:
        with self._lock:
            if time.monotonic() - self._checked_at > READY_CACHE_SECONDS:
                try:
                    self._states = self._verify()
                except Exception as exc:  # an answer (503 naming it), never a dropped connection
                    self._states = [ModelState("*", None, problems=[f"cannot check {self.dest}: {exc}"])]
                self._checked_at = time.monotonic()
                self._log_if_changed()
            return self._states

    def _verify(self) -> list[ModelState]:
        if self.store == "bucket":  # the mounted bucket (S3 Files): size level, no signatures (verify does those)
            from .bucket_verify import verify_bucket

            return verify_bucket(self.dest, self.models)
        return verify(self.dest, self.models)

    def problems(self) -> list[str]:
        """`NAME: KIND` for every problem kind of every model; nothing else leaves the process."""
        return [f"{s.name}: {kind}" for s in self.states() for kind in problem_kinds(s)]

    def _log_if_changed(self) -> None:
        details = [p for s in self._states for p in s.problems]
        if details != self._logged:
            for line in details or ["ready"]:
                self.log(f"not ready: {line}" if details else line)
            self._logged = details


def problem_kinds(state: ModelState) -> list[str]:
    """Short, fixed names for what is wrong with one model, from the state's fields alone."""
    if not state.problems:
        return []
    if state.name == "*":
        return ["no-models"]  # no model root, not a directory, nothing pulled, or it cannot be checked
    if state.version is None:
        return ["not-installed"]
    if state.record is None:  # also a pinned NAME@VERSION the store lacks (verify checks that version)
        return ["unverified"]
    return ["files-differ"]  # missing, wrong size or not in the manifest


def _log_to_stderr(message: str) -> None:
    try:
        print(f"modelsync serve: {message}", file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass  # a closed stderr must never stop the answers


class ModelServer:
    """The server; the interface of socketserver's (server_address, serve_forever, shutdown,
    server_close), so the command can treat it like one."""

    def __init__(
        self,
        host: str,
        port: int,
        dest: str,
        models: list[str] | None,
        *,
        timeout: float = REQUEST_TIMEOUT_SECONDS,
        max_connections: int = MAX_CONNECTIONS,
        log=None,
        store: str = "local",
    ):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.socket = socket.create_server((host, port), family=family, backlog=max_connections)
        self.server_address = self.socket.getsockname()
        self.timeout, self.max_connections = timeout, max_connections
        self.ready = ReadinessCache(dest, models, log, store=store)
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="verify")
        self._pending: dict[asyncio.StreamWriter, None] = {}  # still sending their request, oldest first
        self._dropped: set[asyncio.StreamWriter] = set()  # pushed out, not yet cleaned up
        self._open = 0  # connections that count against the bound
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._started = threading.Event()
        self._shutdown_requested = False

    def serve_forever(self) -> None:
        asyncio.run(self._serve())

    def shutdown(self) -> None:
        """Stop serve_forever; safe from any thread and from a signal handler, also before it started
        (a signal handler runs on the thread that would start it, so it must not wait for that)."""
        self._shutdown_requested = True
        if threading.current_thread() is not threading.main_thread():
            self._started.wait(5)
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(stop.set)

    def server_close(self) -> None:
        self.socket.close()
        self._worker.shutdown(wait=False, cancel_futures=True)

    async def _serve(self) -> None:
        stop = asyncio.Event()
        self._loop, self._stop = asyncio.get_running_loop(), stop
        if self._shutdown_requested:  # asked to stop before the loop ran
            return
        self.socket.setblocking(False)
        accepting = asyncio.ensure_future(self._accept())
        self._started.set()
        try:
            await stop.wait()
        finally:
            accepting.cancel()

    async def _accept(self) -> None:
        """One connection at a time, each making room for itself: the descriptors in use stay at the
        bound plus a few, so accept() does not run out of them and /healthz is always let in."""
        complained_at = -1e9
        while True:
            try:
                conn, _address = await asyncio.get_running_loop().sock_accept(self.socket)
            except OSError as exc:  # out of descriptors or buffers (other files of the process)
                if time.monotonic() - complained_at > 60:
                    self.ready.log(
                        f"cannot accept connections ({exc.strerror or exc}); dropping the oldest unfinished ones"
                    )
                    complained_at = time.monotonic()
                self._drop_oldest_pending()
                await asyncio.sleep(0.1)
                continue
            if self._open >= self.max_connections:
                self._drop_oldest_pending()
            self._open += 1
            asyncio.get_running_loop().create_task(self._connection(conn))
            await asyncio.sleep(0)  # sock_accept does not yield when a connection is waiting: let the drop happen

    # -- one connection -------------------------------------------------------------------------

    async def _connection(self, conn: socket.socket) -> None:
        writer = None
        try:
            reader, writer = await asyncio.open_connection(sock=conn, limit=MAX_HEAD_BYTES)
            if self._open > self.max_connections:  # every open one is already being answered
                await self._answer(writer, 503, {"error": "too many connections: retry later"})
                return
            self._pending[writer] = None
            request = await self._read_head(reader)
            self._pending.pop(writer, None)
            if isinstance(request, int):
                if request:
                    await self._answer(writer, request, {"error": _REASONS[request]})
                    await self._linger(reader, writer)
                return
            method, path = request
            status, body = await self._route(method, path)
            await self._answer(writer, status, body, head_only=method == "HEAD")
        except (TimeoutError, OSError, asyncio.IncompleteReadError):
            pass  # the client went away, was pushed out, or would not take the answer in time
        finally:
            if writer in self._dropped:
                self._dropped.discard(writer)  # no longer counted since it was pushed out
            else:
                self._open -= 1
            if writer is None:
                conn.close()
            else:
                self._pending.pop(writer, None)
                writer.close()  # sends what is buffered (a few hundred bytes at most), then closes

    async def _linger(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """After an error answer, read (and drop) what the client still sends for up to a second:
        closing with unread data makes the kernel reset the connection, and the client may then
        lose the answer."""
        if writer.can_write_eof():
            writer.write_eof()
        deadline = time.monotonic() + 1.0
        dropped = 0
        while dropped < 1024 * 1024 and (left := deadline - time.monotonic()) > 0:
            chunk = await asyncio.wait_for(reader.read(65536), left)
            if not chunk:
                return
            dropped += len(chunk)

    def _drop_oldest_pending(self) -> bool:
        for oldest in self._pending:
            self._pending.pop(oldest)
            self._dropped.add(oldest)
            self._open -= 1
            oldest.transport.abort()  # closed on the next loop turn; its handler sees EOF and cleans up
            return True
        return False

    async def _read_head(self, reader: asyncio.StreamReader) -> tuple[str, str] | int:
        """(method, path), or the error status to answer (0: close without an answer)."""
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), self.timeout)
        except TimeoutError:
            return 408
        except asyncio.LimitOverrunError:
            return 431
        except (asyncio.IncompleteReadError, ConnectionError):
            return 0
        words = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
        if len(words) != 3 or not words[2].startswith("HTTP/") or not words[1].startswith("/"):
            return 400
        if words[0] not in ("GET", "HEAD"):
            return 405
        return words[0], words[1].split("?", 1)[0]

    async def _route(self, method: str, path: str) -> tuple[int, object]:
        if path == "/healthz":  # answered on the loop itself: never waits for the model check
            return 200, {"status": "ok"}
        if path not in ("/readyz", "/models"):
            return 404, {"error": "no such path: try /healthz, /readyz or /models"}
        work: Callable[[], Any] = self.ready.problems if path == "/readyz" else self.ready.states
        check = asyncio.get_running_loop().run_in_executor(self._worker, work)
        try:
            result = await asyncio.wait_for(check, self.timeout)
        except TimeoutError:  # the model volume hangs: say so, keep the connection count down
            return 503, {"ready": False, "problems": ["*: check-timed-out"]} if path == "/readyz" else []
        if path == "/readyz":
            return (503 if result else 200), {"ready": not result, "problems": result}
        return 200, [
            {"name": s.name, "version": s.version, "files": s.files, "size": s.bytes, "ok": not s.problems}
            for s in result
            if s.version
        ]

    async def _answer(self, writer: asyncio.StreamWriter, status: int, body, *, head_only: bool = False) -> None:
        data = (json.dumps(body) + "\n").encode()
        head = (
            f"HTTP/1.1 {status} {_REASONS[status]}\r\nServer: modelsync\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n"
        ).encode()
        writer.write(head if head_only else head + data)
        await asyncio.wait_for(writer.drain(), self.timeout)


def make_server(host: str, port: int, dest: str, models: list[str] | None, **limits) -> ModelServer:
    return ModelServer(host, port, dest, models, **limits)
