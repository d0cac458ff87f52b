"""`modelsync serve` under a slowloris on this machine (not a test; prints figures, asserts nothing).

Starts the real `python -m modelsync serve` on 127.0.0.1 (optionally with a lowered open-files
limit, as a crowded task would have), opens --connections sockets that each send half a request
and then nothing, and prints the server's thread count and open descriptors, whether /healthz
still answers (and in how long), and how many of the half-sent connections the server has closed.

    .venv/bin/python -m tests.runtime.bench_serve
    .venv/bin/python -m tests.runtime.bench_serve --connections 400 --nofile 256
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def proc_status(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def healthz(port: int) -> str:
    started = time.monotonic()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
            return f"{response.status} in {time.monotonic() - started:.3f} s"
    except Exception as exc:  # what the ECS health check would see
        return f"FAILED after {time.monotonic() - started:.1f} s ({type(exc).__name__}: {exc})"


def closed_by_server(sockets: list[socket.socket]) -> int:
    """How many the server has closed (EOF or reset), after any answer it sent first (a 408)."""
    closed = 0
    for sock in sockets:
        sock.setblocking(False)
        try:
            while sock.recv(65536):
                pass
            closed += 1
        except BlockingIOError:
            pass
        except OSError:
            closed += 1
    return closed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=400, help="half-sent requests to hold open (default 400)")
    parser.add_argument("--nofile", type=int, default=0, help="server's open-files limit (default: inherited)")
    args = parser.parse_args()
    resource.setrlimit(resource.RLIMIT_NOFILE, (4096, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))

    def limit():
        if args.nofile:
            resource.setrlimit(resource.RLIMIT_NOFILE, (args.nofile, args.nofile))

    env = {**os.environ, "PYTHONPATH": os.path.join(ROOT, "container")}
    with tempfile.TemporaryDirectory() as dest:
        server = subprocess.Popen([sys.executable, "-m", "modelsync", "serve", "--host", "127.0.0.1", "--port", "0",
                                   "--dest", dest], stderr=subprocess.PIPE, text=True, env=env, preexec_fn=limit)
        try:
            line = server.stderr.readline()
            port = int(line.split("127.0.0.1:")[1].split(",")[0])
            print(f"idle: {proc_status(server.pid, 'Threads')} threads, "
                  f"{len(os.listdir(f'/proc/{server.pid}/fd'))} descriptors; /healthz {healthz(port)}")
            sockets, refused = [], 0
            for _ in range(args.connections):
                try:
                    sock = socket.create_connection(("127.0.0.1", port), timeout=3)
                    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
                    sockets.append(sock)
                except OSError:  # the listen backlog is full: the server stopped accepting
                    refused += 1
            time.sleep(1.0)  # let the server accept them all
            print(f"{len(sockets)} half-sent requests ({refused} could not connect): "
                  f"{proc_status(server.pid, 'Threads')} threads, "
                  f"{len(os.listdir(f'/proc/{server.pid}/fd'))} descriptors, "
                  f"{closed_by_server(sockets)} closed by the server; /healthz {healthz(port)}")
            time.sleep(11)
            print(f"11 s later: {proc_status(server.pid, 'Threads')} threads, "
                  f"{closed_by_server(sockets)} of them closed by the server; /healthz {healthz(port)}")
            for sock in sockets:
                sock.close()
        finally:
            server.terminate()
            server.wait(timeout=10)


if __name__ == "__main__":
    main()
