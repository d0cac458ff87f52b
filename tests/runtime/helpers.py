"""Helpers for the runtime tests: model folders, the real CLI in a subprocess, a fault proxy."""

from __future__ import annotations

import hashlib
import http.client
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

CONTAINER = os.path.join(os.path.dirname(__file__), "..", "..", "container")

# Small parts keep moto's per-request cost low while still exercising ranged downloads.
PART = 1024 * 1024


def make_keypair(folder) -> tuple[str, str]:
    """(private, public) PEM files of a new EC P-256 key, made with openssl as docs/runtime.md says."""
    folder = str(folder)
    os.makedirs(folder, exist_ok=True)
    key, pub = os.path.join(folder, "key.pem"), os.path.join(folder, "pub.pem")
    subprocess.run(["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key],
                   check=True, capture_output=True)
    subprocess.run(["openssl", "ec", "-in", key, "-pubout", "-out", pub], check=True, capture_output=True)
    return key, pub


def write_model(root, files: dict[str, bytes]) -> str:
    """Create a model folder from {relative path: content}."""
    for rel, content in files.items():
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as handle:
            handle.write(content)
    return str(root)


def random_bytes(size: int, seed: int) -> bytes:
    """Deterministic incompressible bytes (fast: sha256 blocks expanded with os.urandom-free PRNG)."""
    import random

    return random.Random(seed).randbytes(size)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def tree(root) -> dict[str, bytes]:
    """{relative path: content} of every file under root (following the model symlink)."""
    found = {}
    for current, _dirs, files in os.walk(root):
        for name in files:
            path = os.path.join(current, name)
            with open(path, "rb") as handle:
                found[os.path.relpath(path, root).replace(os.sep, "/")] = handle.read()
    return found


def merged_env(env: dict | None) -> dict:
    """The session's environment with env applied; a value of None removes the variable."""
    full_env = dict(os.environ)
    for key, value in (env or {}).items():
        if value is None:
            full_env.pop(key, None)
        else:
            full_env[key] = value
    return full_env


def run_cli(*args, env: dict | None = None, timeout: float = 60, check: bool = False):
    """Run `python -m modelsync ARGS` as the image would, with the session's environment."""
    full_env = merged_env(env)
    proc = subprocess.run(
        [sys.executable, "-m", "modelsync", *map(str, args)],
        capture_output=True, text=True, env=full_env, timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"modelsync {' '.join(map(str, args))} -> {proc.returncode}\n{proc.stderr}")
    return proc


def publish_cli(tmp_path, env: dict, files: dict[str, bytes], key=None, name: str = "m", *extra) -> str:
    """`modelsync publish` of a new folder under tmp_path holding files (signed with key, when given): the version."""
    folder = write_model(os.path.join(tmp_path, f"src-{len(os.listdir(tmp_path))}"), files)
    args = ["publish", folder, "--name", name, "--progress", "quiet", *extra] + (["--signing-key", key] if key else [])
    return run_cli(*args, env=env, check=True).stdout.strip()


def popen_cli(*args, env: dict | None = None):
    full_env = merged_env(env)
    return subprocess.Popen(
        [sys.executable, "-m", "modelsync", *map(str, args)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=full_env,
    )


def assert_one_line_error(proc, *fragments: str) -> None:
    """Non-zero exit, exactly one stderr line `modelsync: error: ...` naming the problem, no traceback."""
    assert proc.returncode != 0, proc.stdout
    lines = [l for l in proc.stderr.splitlines() if l.strip() and not l.startswith("{")]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("modelsync: error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


class Gate:
    """A rendezvous in the proxy instead of a sleep: requests that match(method, path, count) are held
    before they are forwarded until release(), or until `parties` of them have arrived (then all
    go on together). Tests wait for arrivals to know a process is at a given point, whatever the load."""

    def __init__(self, match, *, parties: int | None = None, timeout: float = 60):
        self.match, self.parties, self.timeout = match, parties, timeout
        self.arrived = 0
        self._open = False
        self._cond = threading.Condition()

    def wait_for_arrivals(self, count: int = 1, timeout: float = 60) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self.arrived >= count, timeout)

    def release(self) -> None:
        with self._cond:
            self._open = True
            self._cond.notify_all()

    def enter(self) -> None:
        """Called by the proxy for a matching request: count it, then wait until the gate opens."""
        with self._cond:
            self.arrived += 1
            if self.parties is not None and self.arrived >= self.parties:
                self._open = True
            self._cond.notify_all()
            self._cond.wait_for(lambda: self._open, self.timeout)


def file_named(name: str, after: int = 0):
    """A Gate match for the GETs of one model file (by its path under files/), from its after+1-th GET
    on (count: how many times the proxy has seen that path, this request included)."""
    return lambda method, path, count: method == "GET" and path.endswith(f"/files/{name}") and count > after


class FaultProxy:
    """A real HTTP proxy in front of the S3 server that can throttle, cut, corrupt or slow
    responses to object GETs, and counts them. `fault(method, path, count)` returns None,
    "slowdown", "conflict" (409 ConditionalRequestConflict), "truncate" or "corrupt"; count is how many
    times that path was requested. `requests` keeps (method, path and query, headers) of each request."""

    def __init__(self, upstream: str):
        self.upstream = urlsplit(upstream)
        self.fault = lambda method, path, count: None
        self.bytes_per_second: float | None = None  # slows object bodies when set
        self.counts: Counter = Counter()
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.gates: list[Gate] = []  # matching requests wait at each gate (see Gate)
        self.body_bytes: Counter = Counter()  # response body bytes sent, per (method, path)
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def file_gets(self) -> Counter:
        """GET count per object path under .../files/ (the model files, not manifests)."""
        return Counter({p: n for (m, p), n in self.counts.items() if m == "GET" and "/files/" in p})

    def file_bytes(self) -> int:
        """Body bytes of model files (under .../files/) sent to clients."""
        return sum(n for (m, p), n in self.body_bytes.items() if m == "GET" and "/files/" in p)

    def _handler(self):
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _forward(self):
                path_only = self.path.split("?", 1)[0]
                with proxy._lock:
                    proxy.counts[(self.command, path_only)] += 1
                    count = proxy.counts[(self.command, path_only)]
                    proxy.requests.append((self.command, self.path, dict(self.headers.items())))
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                for gate in proxy.gates:
                    if gate.match(self.command, path_only, count):
                        gate.enter()
                action = proxy.fault(self.command, path_only, count)
                if action in ("slowdown", "conflict"):
                    code, status = ("SlowDown", 503) if action == "slowdown" else ("ConditionalRequestConflict", 409)
                    payload = (f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code>"
                               "<Message>Please try again.</Message></Error>").encode()
                    self.send_response(status)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                conn = http.client.HTTPConnection(proxy.upstream.hostname, proxy.upstream.port, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                headers["Host"] = proxy.upstream.netloc
                conn.request(self.command, self.path, body=body, headers=headers)
                upstream = conn.getresponse()
                data = upstream.read()
                conn.close()
                if action == "corrupt" and data:
                    data = bytes([data[0] ^ 0xFF]) + data[1:]
                self.send_response(upstream.status)
                for key, value in upstream.getheaders():
                    lower = key.lower()
                    if lower in ("transfer-encoding", "connection", "content-length", "server", "date"):
                        continue
                    if action == "corrupt" and lower.startswith("x-amz-checksum"):
                        continue
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command == "HEAD":
                    return
                sent = len(data) // 2 if action == "truncate" else len(data)
                with proxy._lock:
                    proxy.body_bytes[(self.command, path_only)] += sent
                if action == "truncate":
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                if proxy.bytes_per_second and "/files/" in path_only:
                    step = 64 * 1024
                    for start in range(0, len(data), step):
                        self.wfile.write(data[start:start + step])
                        time.sleep(step / proxy.bytes_per_second)
                else:
                    self.wfile.write(data)

            do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = _forward

        return Handler


def model_files(seed: int = 0, big: int = 3 * PART + 12345) -> dict[str, bytes]:
    """A small model: one file bigger than a part (ranged download), nested and empty files."""
    return {
        "model.pth": random_bytes(big, seed),
        "config.yaml": f"seed: {seed}\n".encode(),
        "sub/dir/weights.npy": random_bytes(5000, seed + 1),
        "empty.txt": b"",
    }
