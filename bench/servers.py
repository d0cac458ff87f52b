"""The two local S3-compatible servers the benchmark runs against, each a separate process on 127.0.0.1.

moto_server (Python) is slow enough to be the limit of every tool here; s3rver (Node, bench/package.json)
is fast enough that the client's own cost shows.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

BENCH = os.path.dirname(os.path.abspath(__file__))
S3RVER = os.path.join(BENCH, "node_modules", ".bin", "s3rver")
TICKS = os.sysconf("SC_CLK_TCK")
# Both servers accept these (s3rver checks signatures against its built-in S3RVER key pair).
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "S3RVER", "AWS_SECRET_ACCESS_KEY": "S3RVER"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A running server: its endpoint and its CPU seconds so far."""

    def __init__(self, name: str, cmd: list[str], port: int, env: dict | None = None):
        self.name, self.port = name, port
        self.endpoint = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(200):
            if self.proc.poll() is not None:
                raise SystemExit(f"{name} exited with {self.proc.returncode} at start: {' '.join(cmd)}")
            try:
                urllib.request.urlopen(self.endpoint + "/", timeout=1)
                return
            except urllib.error.HTTPError:
                return  # any HTTP answer means it listens
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise SystemExit(f"{name} did not start on {self.endpoint}")

    def cpu_seconds(self) -> float:
        """user + system seconds of the server process, from the kernel's accounting."""
        with open(f"/proc/{self.proc.pid}/stat") as handle:
            fields = handle.read().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / TICKS

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def start(name: str, datadir: str) -> Server:
    port = free_port()
    if name == "moto":
        return Server("moto", [os.path.join(sys.prefix, "bin", "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                      port)
    if name == "s3rver":
        if not os.access(S3RVER, os.X_OK):
            raise SystemExit(f"{S3RVER} not found: run `npm ci` in {BENCH} (make bench does)")
        os.makedirs(datadir, exist_ok=True)
        # s3rver 3.7.1 signs list continuation tokens with DES, which Node >= 17 only has with the
        # legacy provider: without it every listing over 1,000 keys answers HTTP 500.
        env = dict(os.environ, NODE_OPTIONS="--openssl-legacy-provider")
        return Server("s3rver", [S3RVER, "-d", datadir, "-a", "127.0.0.1", "-p", str(port), "--silent",
                                 "--no-vhost-buckets"], port, env)
    raise SystemExit(f"unknown server {name!r}: use moto or s3rver")
