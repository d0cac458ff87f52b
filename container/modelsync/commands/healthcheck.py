"""modelsync healthcheck: exit 0 when /healthz on localhost answers 200 (ECS container health check)."""

from __future__ import annotations

import sys
import urllib.error
import urllib.request


def register(subparsers) -> None:
    parser = subparsers.add_parser("healthcheck", help="exit 0 when the local serve process is healthy")
    parser.add_argument("--port", type=int, default=None, help="port (env MODELSYNC_PORT, default 8080)")
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds to wait (default 3)")
    parser.set_defaults(run=run)


def run(args) -> int:
    from .. import config

    port = config.check_port(args.port) if args.port is not None else config.default_port()
    url = f"http://127.0.0.1:{port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=args.timeout) as response:
            healthy = response.status == 200
    except (urllib.error.URLError, OSError) as exc:
        print(f"modelsync healthcheck: {url} unreachable: {exc}", file=sys.stderr)
        return 1
    return 0 if healthy else 1
