"""modelsync healthcheck: exit 0 when /healthz on localhost answers 200 (ECS container health check)."""

from __future__ import annotations

import sys
import urllib.error
import urllib.request

from ..options import BAD_INPUT, finish, option
from . import _common


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "healthcheck",
        help="exit 0 when the local serve process is healthy",
        description="GET http://127.0.0.1:PORT/healthz: exit 0 on 200 (the image's HEALTHCHECK and the ECS "
        "container health check).",
    )
    _common.add_port(parser)
    option(parser, "--timeout", default=3.0, convert=_seconds, metavar="SECONDS", help="seconds to wait")
    finish(
        parser,
        example="modelsync healthcheck --port 8080",
        exit_codes={0: "healthy", 1: "unreachable or not healthy", 2: BAD_INPUT},
    )
    parser.set_defaults(run=run)


def _seconds(raw) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError("is not a number of seconds: use e.g. 3") from None
    if not value > 0:
        raise ValueError("is not a positive number of seconds: use e.g. 3")
    return value


def run(args) -> int:
    port = args.port
    url = f"http://127.0.0.1:{port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=args.timeout) as response:
            healthy = response.status == 200
    except (urllib.error.URLError, OSError) as exc:
        print(f"modelsync healthcheck: {url} unreachable: {exc}", file=sys.stderr)
        return 1
    return 0 if healthy else 1
