"""`modelsync` command line: one module per subcommand, each with register(subparsers)."""

from __future__ import annotations

import argparse
import importlib
import sys

from . import __version__, options, stop
from .errors import ModelsyncError
from .options import option

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
    "modelsync.commands.url",
    "modelsync.commands.seed",
    "modelsync.commands.sign",
    "modelsync.commands.resign",
]


def _command_name(module_name: str) -> str:
    """The subcommand a module registers: its own name."""
    return module_name.rsplit(".", 1)[1]


def _endpoint(raw: str) -> str:
    if not raw.startswith(("http://", "https://")) or len(raw.split("://", 1)[1].strip("/")) == 0:
        raise ValueError("is not an endpoint URL: use http(s)://HOST[:PORT]")
    return raw


def add_globals(parser) -> list[argparse.Action]:
    """The global options, declared once on the top-level parser; returns their argparse actions."""
    declared = [
        option(
            parser,
            "--endpoint-url",
            env=("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"),
            convert=_endpoint,
            convert_env=False,
            metavar="URL",
            show_default="AWS",
            help="S3 endpoint (an S3-compatible server)",
        ),
        option(
            parser,
            "--region",
            env=("AWS_REGION", "AWS_DEFAULT_REGION"),
            metavar="REGION",
            show_default="from the AWS config",
            help="AWS region",
        ),
        option(
            parser,
            "--profile",
            env="AWS_PROFILE",
            metavar="NAME",
            show_default="the credential chain",
            help="named profile of the AWS config files",
        ),
        option(
            parser,
            "-v",
            "--verbose",
            action="store_true",
            help="on error, also show the underlying errors (botocore's) that led to it",
        ),
    ]
    dests = {o.dest for o in declared}
    return [a for a in parser._actions if a.dest in dests]


def repeat_globals(sub, actions: list[argparse.Action]) -> None:
    """Accept the global options after the subcommand too (`modelsync list --region R`): the same
    flags, without a default of their own (SUPPRESS), so the top-level declaration resolves them."""
    group = sub.add_argument_group("global options (also accepted before the command)")
    for action in actions:
        extra = {"action": "store_true"} if action.nargs == 0 else {"metavar": action.metavar}
        group.add_argument(
            *action.option_strings, dest=action.dest, default=argparse.SUPPRESS, help=action.help, **extra
        )


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser; with `only` (a command name), just that subcommand: importing all of them (the
    seed command pulls in yaml, urllib and email) costs a warm pull ~50 ms of its ~150."""
    modules = [m for m in COMMANDS if _command_name(m) == only] or COMMANDS
    parser = argparse.ArgumentParser(
        prog="modelsync",
        description="Deliver ML model files from S3 to containers: versioned, parallel, verified, atomic.",
    )
    parser.add_argument("--version", action="version", version=f"modelsync {__version__}")
    global_actions = add_globals(parser)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in modules:
        importlib.import_module(module_name).register(subparsers)
    for sub in subparsers.choices.values():
        repeat_globals(sub, global_actions)
    parser.set_defaults(_subparsers=subparsers)
    return parser


def _command_words(words: list[str]) -> str | None:
    """The subcommand named in words (the first word that is not a global option or its value)."""
    takes_value = {"--endpoint-url", "--region", "--profile"}
    skip = False
    for word in words:
        if skip:
            skip = False
        elif word in takes_value:
            skip = True
        elif not word.startswith("-"):
            return word
    return None


def main(argv: list[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else argv
    parser = build_parser(_command_words(words))
    args = parser.parse_args(argv)
    stop.install()
    try:
        options.resolve(parser, args)
        options.resolve(args._subparsers.choices[args.command], args)
        from .s3 import globals_applied

        with globals_applied(endpoint_url=args.endpoint_url, region=args.region, profile=args.profile):
            return int(args.run(args) or 0)
    except ModelsyncError as exc:
        print(f"modelsync: error: {exc}", file=sys.stderr)
        if getattr(args, "verbose", False):
            _print_chain(exc)
        return exc.exit_code
    except stop.Stopped as exc:
        print(
            f"modelsync: {args.command} {exc} before it finished: run it again to finish (nothing partial is visible)",
            file=sys.stderr,
        )
        return exc.exit_code
    except KeyboardInterrupt:  # only when used without the handlers (embedded callers)
        print("modelsync: interrupted", file=sys.stderr)
        return 130


def _print_chain(exc: BaseException) -> None:
    """-v: the exceptions behind the one-line error (`raise ... from None` keeps them as __context__)."""
    seen, current = {id(exc)}, exc.__cause__ or exc.__context__
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        print(f"  caused by: {type(current).__module__}.{type(current).__qualname__}: {current}", file=sys.stderr)
        current = current.__cause__ or current.__context__
