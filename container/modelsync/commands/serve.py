"""modelsync serve: HTTP /healthz, /readyz and /models for the default app container."""

from __future__ import annotations

import sys

from ..options import BAD_INPUT, finish, option
from . import _common


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="serve /healthz, /readyz and /models over HTTP",
        description="The demo app: /healthz (200 while running), /readyz (200 only while the models verify), "
        "/models (JSON). Runs until SIGTERM or SIGINT, then exits 0.",
    )
    _common.add_dest(parser)
    _common.add_store(parser)
    _common.add_models(parser)
    option(parser, "--host", default="0.0.0.0", help="address to listen on (all addresses)")
    _common.add_port(parser)
    finish(
        parser,
        example="modelsync serve --dest /models --port 8080",
        exit_codes={0: "stopped by SIGTERM / SIGINT (its normal end)", 2: BAD_INPUT + "; or the port is taken"},
    )
    parser.set_defaults(run=run)


def run(args) -> int:
    from .. import config
    from ..errors import ModelsyncError
    from ..serve import make_server

    port = args.port
    models = args.models
    for spec in models or []:  # refused before listening: a bad spec would make every /readyz fail
        config.parse_model_spec(spec)
    try:
        server = make_server(args.host, port, args.dest, models, store=args.store)
    except OSError as exc:
        raise ModelsyncError(
            f"cannot listen on {args.host}:{port} ({exc.strerror}): pick another --port / MODELSYNC_PORT"
        ) from None
    print(
        f"modelsync serve: listening on {args.host}:{server.server_address[1]}, models in {args.dest}",
        file=sys.stderr,
        flush=True,
    )
    from .. import stop

    stop.install(on_stop=server.shutdown)  # ECS stops tasks with SIGTERM: a clean shutdown, exit 0
    try:
        server.serve_forever()
    finally:
        server.server_close()
    if stop.requested():
        print(f"modelsync serve: stopped by {stop.signal_name()}, shutting down", file=sys.stderr, flush=True)
    return 0
