"""One declaration per flag: its name, environment variable, default and check in one place.

`option(parser, "--concurrency", env="MODELSYNC_CONCURRENCY", default=16, convert=whole(1))` adds the
flag, writes "(env MODELSYNC_CONCURRENCY; default 16)" into its --help, and records it on the parser.
After parsing, `resolve(parser, args)` fills every option the command line left out from its
environment variable, then from its default, and converts and checks the value: a bad value is one
line naming where it came from (`--concurrency` or `MODELSYNC_CONCURRENCY=abc`), exit 2. The
environment is read then, not when the parser is built.

`finish(parser, ...)` writes the epilog of a subcommand's --help: an example, the environment
variables of its options (collected from the declarations) and its exit codes.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import ModelsyncError

_ATTR = "_modelsync_options"
_EPILOG = "_modelsync_epilog"


@dataclass(frozen=True)
class Option:
    dest: str
    flag: str  # how messages name the flag: its first spelling, or the positional's metavar
    envs: tuple[str, ...]  # read in order when the flag is absent; the first one set wins
    default: Any
    convert: Callable[[Any], Any] | None  # raises ValueError("is not ...: use ..."), shown after the value
    split: bool  # a repeatable flag: its environment variable is a comma list
    convert_env: bool = True  # False: the variable belongs to another tool (boto3), which checks it
    empty: str | None = None  # set: a value given but empty is an error, this text its fix (else: not given)
    help: str = ""  # what it does, without the "(env ...; default ...)" note --help adds
    shown_default: str | None = None  # the default as --help shows it (None: no default shown)


def option(
    parser,
    *flags: str,
    env: str | tuple[str, ...] | None = None,
    default: Any = None,
    convert: Callable[[Any], Any] | None = None,
    help: str = "",
    show_default: str | None = None,
    convert_env: bool = True,
    empty: str | None = None,
    **kwargs,
) -> Option:
    """Declare a flag (or a positional, e.g. option(p, "dir", nargs="?")) with its environment variable
    and default. Extra keyword arguments go to argparse (metavar, choices, action="append"...).
    empty: for a setting whose absence means "off" (a trust key): `--flag ''` or a variable set to an
    empty value is then one line (the text says what to do), not silently "off"."""
    envs = (env,) if isinstance(env, str) else tuple(env or ())
    shown = show_default if show_default is not None else (None if default is None else str(default))
    notes = [f"env {' or '.join(envs)}"] if envs else []
    if shown is not None and kwargs.get("action") not in ("store_true", "store_false"):
        notes.append(f"default {shown}")
    text = f"{help} ({'; '.join(notes)})" if notes else help
    # The default is applied by resolve(), after the environment: argparse only sees "not given".
    kwargs.setdefault("default", False if kwargs.get("action") == "store_true" else None)
    action = parser.add_argument(*flags, help=text, **kwargs)
    if kwargs.get("action") == "store_true":
        default = False
    declared = Option(
        action.dest,
        flags[0] if flags[0].startswith("-") else (action.metavar or action.dest),
        envs,
        default,
        convert,
        kwargs.get("action") == "append",
        convert_env,
        empty,
        help,
        shown if kwargs.get("action") not in ("store_true", "store_false") else None,
    )
    if not hasattr(parser, _ATTR):
        setattr(parser, _ATTR, [])
    getattr(parser, _ATTR).append(declared)
    return declared


def declared(parser) -> list[Option]:
    return list(getattr(parser, _ATTR, []))


@dataclass(frozen=True)
class Epilog:
    """What finish() wrote into a subcommand's --help, kept as data for the CLI reference (modelsync.reference)."""

    examples: tuple[str, ...]
    environment: dict[str, str]  # variable(s) -> the flag or what it sets
    exit_codes: dict[int | str, str]


def epilog_of(parser) -> Epilog | None:
    return getattr(parser, _EPILOG, None)


def resolve(parser, args: argparse.Namespace) -> argparse.Namespace:
    """Fill and check every option declared on parser (flag, else environment, else default)."""
    for opt in declared(parser):
        given = getattr(args, opt.dest, None)
        if opt.empty and isinstance(given, str) and not given.strip():
            raise ModelsyncError(f"{opt.flag} is empty: {opt.empty}")
        if given is not None and given is not False and given != []:
            value, source = given, opt.flag
        else:
            value, source = _from_env(opt)
        if value is None or value is False:
            setattr(args, opt.dest, opt.default if value is None else value)
            continue
        if opt.convert is not None and (source == opt.flag or opt.convert_env):
            try:
                value = [opt.convert(v) for v in value] if isinstance(value, list) else opt.convert(value)
            except ValueError as exc:
                where = source if source != opt.flag else f"{opt.flag} {given if not isinstance(given, list) else ''}"
                raise ModelsyncError(f"{where.rstrip()} {exc}") from None
        setattr(args, opt.dest, value)
    return args


def _from_env(opt: Option) -> tuple[Any, str]:
    for name in opt.envs:
        raw = os.environ.get(name, "").strip()
        if not raw and opt.empty and name in os.environ:
            raise ModelsyncError(f"{name} is set but empty: {opt.empty}")
        if raw:
            value: Any = [v.strip() for v in raw.split(",") if v.strip()] if opt.split else raw
            return (value or None), f"{name}={raw!r}"
    return None, ""


def comma_list(value: str | None) -> list[str]:
    """A comma list given as one value (`--only a,b`): its stripped, non-empty parts."""
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def whole(minimum: int | None = None, maximum: int | None = None, *, problem: str = "") -> Callable[[Any], int]:
    """A converter to an int within [minimum, maximum]; `problem` replaces the out-of-range message."""

    def convert(raw: Any) -> int:
        try:
            value = int(str(raw).strip())
        except ValueError:
            raise ValueError(f"is not a whole number: use e.g. {minimum if minimum is not None else 1}") from None
        if minimum is not None and value < minimum:
            raise ValueError(problem or f"is too small: use at least {minimum}")
        if maximum is not None and value > maximum:
            raise ValueError(problem or f"is too large: use at most {maximum}")
        return value

    return convert


def switch(raw: Any) -> bool:
    """A converter to a bool: the flag itself (True), or a variable's true/false (also 1/0, yes/no)."""
    if isinstance(raw, bool):
        return raw
    value = str(raw).strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError("is not true or false: use true or false")


def finish(
    parser,
    *,
    example: str,
    exit_codes: dict[int | str, str],
    extra_env: dict[str, str] | None = None,
    s3: bool = True,
):
    """The --help epilog: example(s), the environment variables of the declared options, exit codes.
    s3=False: the command names a bucket but makes no S3 request (no S3 settings listed)."""
    rows = {env: opt.flag for opt in declared(parser) for env in opt.envs}
    if s3 and any(opt.dest == "bucket" for opt in declared(parser)):
        rows.update(S3_ENV)
    rows.update(extra_env or {})
    epilog = Epilog(tuple(example.strip().splitlines()), rows, dict(exit_codes))
    setattr(parser, _EPILOG, epilog)
    width = max((len(k) for k in rows), default=0)
    lines = ["examples:", *(f"  {line}" for line in epilog.examples), "", "environment:"]
    lines += [f"  {name:<{width}}  {what}" for name, what in rows.items()] or ["  (none)"]
    lines += ["", "exit codes:", *(f"  {code:<4} {what}" for code, what in exit_codes.items())]
    parser.epilog = "\n".join(lines)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter


# The S3 settings every command with a bucket reads (boto3's, and s3.py's checks of the retry settings).
S3_ENV = {
    "AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL": "--endpoint-url",
    "AWS_REGION, AWS_DEFAULT_REGION": "--region",
    "AWS_PROFILE": "--profile",
    "AWS_MAX_ATTEMPTS": "attempts per S3 request, botocore's retries included (default 5)",
    "AWS_RETRY_MODE": "legacy, standard or adaptive (default adaptive)",
}

# The exit codes every command shares (errors.py, stop.py).
BAD_INPUT = "bad input or configuration (one line on stderr names the problem and the fix)"
STOPPED = "stopped by SIGINT / SIGTERM (130 / 143) before it finished"
