"""`modelsync serve` against abuse (security review, finding D), over real sockets: half-sent
requests (slowloris), more connections than it serves at once, what /readyz reveals, the banner."""

from __future__ import annotations

import json
import os
import resource
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request

import pytest

from .helpers import merged_env

HALF_REQUEST = b"GET /healthz HTTP/1.1\r\nHost: x\r\n"  # and never the blank line that ends it


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), json.loads(exc.read())


def threads_of(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("Threads:"))


def open_half_requests(port: int, count: int) -> list[socket.socket]:
    sockets, failures = [], 0
    for _ in range(count):
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=2)
            sock.sendall(HALF_REQUEST)
            sockets.append(sock)
        except OSError:  # the listen backlog is full: what the old server did once out of descriptors
            failures += 1
            if failures == 3:
                break
    return sockets


def closed_by_server(sock: socket.socket, timeout: float = 5) -> bool:
    """True when the server closed the connection (EOF or reset) within timeout: the guard of a
    liveness wait, not a timed assertion."""
    sock.settimeout(timeout)
    try:
        while sock.recv(4096):
            pass  # a 408/503 answer before the close is fine
        return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


@pytest.fixture
def serve_limited(tmp_path):
    """The real `python -m modelsync serve`, with 200 open files at most (as a crowded task may have)."""
    procs = []

    def start(dest):
        def limit():
            resource.setrlimit(resource.RLIMIT_NOFILE, (200, 200))

        proc = subprocess.Popen([sys.executable, "-m", "modelsync", "serve", "--host", "127.0.0.1", "--port", "0",
                                 "--dest", str(dest)], stderr=subprocess.PIPE, text=True, env=merged_env(None),
                                preexec_fn=limit)
        procs.append(proc)
        line = proc.stderr.readline()
        assert "listening on" in line, line
        return proc, int(line.split("127.0.0.1:")[1].split(",")[0])

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(timeout=10)


def test_healthz_keeps_answering_under_a_slowloris_with_few_threads(serve_limited, tmp_path):
    """400 half-sent requests used to hold 401 threads; with 200 descriptors /healthz stopped answering."""
    proc, port = serve_limited(tmp_path)
    sockets = open_half_requests(port, 400)
    try:
        status, _headers, body = get(f"http://127.0.0.1:{port}/healthz")
        assert (status, body) == (200, {"status": "ok"})
        assert threads_of(proc.pid) <= 4
        assert len(os.listdir(f"/proc/{proc.pid}/fd")) < 200
        # The oldest half-sent connections were dropped to make room: the server holds at most its bound.
        assert sum(closed_by_server(s, timeout=0.2) for s in sockets[:100]) == 100
    finally:
        for sock in sockets:
            sock.close()


@pytest.fixture
def server(tmp_path):
    """make_server in this process with small bounds, on a real socket."""
    from modelsync.serve import make_server

    running = []

    def start(dest=tmp_path, **kwargs):
        srv = make_server("127.0.0.1", 0, str(dest), None, **kwargs)
        thread = threading.Thread(target=srv.serve_forever, daemon=True)
        thread.start()
        running.append((srv, thread))
        return srv.server_address[1]

    yield start
    for srv, thread in running:
        srv.shutdown()
        thread.join(timeout=10)
        srv.server_close()


def test_a_half_sent_request_is_closed_after_the_per_connection_timeout(server):
    port = server(timeout=0.5)
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(HALF_REQUEST)
    assert closed_by_server(sock)
    assert get(f"http://127.0.0.1:{port}/healthz")[0] == 200


def test_connections_beyond_the_bound_drop_the_oldest_half_sent_ones(server):
    port = server(max_connections=10, timeout=60)
    sockets = open_half_requests(port, 30)
    try:
        assert get(f"http://127.0.0.1:{port}/healthz")[0] == 200  # the 31st connection is answered
        dropped = [closed_by_server(s, timeout=0.5) for s in sockets]
        assert dropped[:20] == [True] * 20  # the oldest went first
        assert sum(dropped) <= 21  # the newest are still open (the /healthz above took one place)
    finally:
        for sock in sockets:
            sock.close()


def test_readyz_names_models_and_problem_kinds_only_and_logs_the_details(tmp_path):
    dest = tmp_path / "secret-location" / "models"
    (dest / "m").mkdir(parents=True)  # a real directory where the model link should be
    proc = subprocess.Popen([sys.executable, "-m", "modelsync", "serve", "--host", "127.0.0.1", "--port", "0",
                             "--dest", str(dest)], stderr=subprocess.PIPE, text=True,
                            env=merged_env({"MODELSYNC_MODELS": "m,other@0123456789abcdef"}))
    try:
        port = int(proc.stderr.readline().split("127.0.0.1:")[1].split(",")[0])
        status, headers, body = get(f"http://127.0.0.1:{port}/readyz")
    finally:
        proc.terminate()
        _out, log = proc.communicate(timeout=10)
    assert status == 503
    assert body == {"ready": False, "problems": ["m: not-installed", "other: unverified"]}  # pinned, not in the store
    assert headers["Server"] == "modelsync"  # no Python or modelsync version
    assert "secret-location" not in json.dumps(body)
    # The details, paths included, go to the log (once, when they change).
    assert f"modelsync serve: not ready: {dest}/m is a real file or directory, not a modelsync link" in log


@pytest.mark.parametrize("setup, problems", [
    (lambda dest: None, ["*: no-models"]),  # dest does not exist
    (lambda dest: dest.write_text(""), ["*: no-models"]),  # dest is a file
])
def test_readyz_without_a_model_root_reveals_no_path(server, tmp_path, setup, problems):
    dest = tmp_path / "hidden"
    setup(dest)
    port = server(dest=dest)
    status, headers, body = get(f"http://127.0.0.1:{port}/readyz")
    assert (status, body) == (503, {"ready": False, "problems": problems})
    assert "hidden" not in json.dumps(body) and headers["Server"] == "modelsync"


def test_malformed_and_oversized_requests_get_an_answer_not_a_traceback(server):
    port = server()
    for request, status in ((b"BREW /pot HTTP/1.1\r\n\r\n", b"405"), (b"nonsense\r\n\r\n", b"400"),
                            (b"GET /" + b"x" * 20_000 + b" HTTP/1.1\r\n\r\n", b"431")):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(request)
            answer = b""
            while chunk := sock.recv(4096):
                answer += chunk
        assert answer.split(b" ")[1] == status, answer[:100]
