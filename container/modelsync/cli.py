"""`modelsync` command line: one module per subcommand, each with register(subparsers)."""

from __future__ import annotations

import argparse
import importlib
import sys

from . import __version__, stop
from .errors import ModelsyncError

# The one list of subcommand modules (each exposes register(subparsers)).
COMMANDS = [
    "modelsync.commands.publish",
    "modelsync.commands.pull",
    "modelsync.commands.verify",
    "modelsync.commands.view",
    "modelsync.commands.list",
    "modelsync.commands.prune",
    "modelsync.commands.serve",
    "modelsync.commands.healthcheck",
    "modelsync.seed.command",
]


def _command_name(module_name: str) -> str:
    """The subcommand a module registers: its own name, or its package's for `<pkg>.command`."""
    parts = module_name.split(".")
    return parts[-2] if parts[-1] == "command" else parts[-1]


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser; with `only` (a command name), just that subcommand: importing all of them (the
    seed command pulls in yaml, urllib and email) costs a warm pull ~50 ms of its ~150."""
    modules = [m for m in COMMANDS if _command_name(m) == only] or COMMANDS
    parser = argparse.ArgumentParser(
        prog="modelsync",
        description="Deliver ML model files from S3 to containers: versioned, parallel, verified, atomic.",
    )
    parser.add_argument("--version", action="version", version=f"modelsync {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in modules:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else argv
    args = build_parser(words[0] if words else None).parse_args(argv)
    stop.install()
    try:
        return int(args.run(args) or 0)
    except ModelsyncError as exc:
        print(f"modelsync: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except stop.Stopped as exc:
        print(f"modelsync: {args.command} {exc} before it finished: run it again to finish "
              "(nothing partial is visible)", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:  # only when used without the handlers (embedded callers)
        print("modelsync: interrupted", file=sys.stderr)
        return 130
