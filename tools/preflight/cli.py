"""`python -m tools.preflight`: read the stage's settings from cdk.json, run the checks, exit 0, 1 or 2."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import boto3
from botocore.exceptions import BotoCoreError

from model_delivery.errors import ModelDeliveryError
from modelsync.errors import ModelsyncError
from modelsync.s3 import make_client
from tools.pins import add_stage_arguments, cdk_context, stage_settings
from tools.preflight import CHECK_NAMES, CHECKS, failed, run_checks, summary
from tools.preflight.context import ClientFactory, CommandRunner, Context, SessionClients, run_quietly
from tools.seed import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, SeedError

PROG = "preflight"
# cdk.json context key of a custom bootstrap qualifier, and CDK's default (aws-cdk-lib DefaultStackSynthesizer).
QUALIFIER_KEY = "@aws-cdk/core:bootstrapQualifier"
DEFAULT_QUALIFIER = "hnb659fds"


def stage_region(region: str | None, stage_region: str) -> str:
    """Where the stage deploys: --region, else its 'region', else what the CDK CLI would use (the AWS config)."""
    chosen = region or stage_region or boto3.Session().region_name
    if not chosen:
        raise SeedError(
            "no AWS region: set 'region' for the stage in cdk.json, pass --region, or set AWS_REGION", EXIT_USAGE
        )
    return chosen


def make_context(
    cdk_json: Path,
    stage: str,
    region: str | None,
    client: ClientFactory | None = None,
    s3: Callable[[], Any] = make_client,
    run: CommandRunner = run_quietly,
) -> Context:
    """The checks' context for a stage of cdk.json; clients of the default AWS session unless given."""
    settings = stage_settings(cdk_json, stage)
    chosen = stage_region(region, settings.stage.region)
    if client is None:
        client = SessionClients(boto3.Session(region_name=chosen))
    qualifier = str(cdk_context(cdk_json).get(QUALIFIER_KEY, DEFAULT_QUALIFIER))
    return Context(settings=settings, region=chosen, client=client, s3=s3, run=run, qualifier=qualifier)


def parse_skips(values: list[str]) -> set[str]:
    names = {name.strip() for value in values for name in value.split(",") if name.strip()}
    unknown = sorted(names - set(CHECK_NAMES))
    if unknown:
        raise SeedError(
            f"--skip {', '.join(unknown)}: no such check; the checks are {', '.join(CHECK_NAMES)}", EXIT_USAGE
        )
    return names


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tools.preflight",
        description="Check what a deploy of the stage needs from the AWS account, one line per check.",
        epilog="checks, in order:\n" + "\n".join(f"  {check.name:<22}{check.summary}" for check in CHECKS),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_stage_arguments(parser)
    parser.add_argument(
        "--skip",
        action="extend",
        nargs="+",
        default=[],
        metavar="CHECK",
        help="do not run these checks (names or a comma-separated list)",
    )
    return parser


def main(
    argv: list[str] | None = None,
    *,
    client: ClientFactory | None = None,
    s3: Callable[[], Any] = make_client,
    run: CommandRunner = run_quietly,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    args = build_parser().parse_args(argv)
    try:
        skipped = parse_skips(args.skip)
        ctx = make_context(args.cdk_json, args.stage, args.region, client, s3, run)
    except ModelDeliveryError as exc:  # a bad setting in cdk.json
        print(f"{PROG}: error: {exc}", file=err)
        return EXIT_USAGE
    except (SeedError, ModelsyncError, BotoCoreError) as exc:  # no region; a broken AWS profile
        print(f"{PROG}: error: {exc}", file=err)
        return getattr(exc, "exit_code", EXIT_USAGE)
    try:
        results = run_checks(ctx, out, skipped)
    except KeyboardInterrupt:
        print(f"\n{PROG}: interrupted", file=err)
        return EXIT_INTERRUPTED
    where = f"stage {ctx.settings.stage.name} in {ctx.region}"
    names = failed(results)
    if names:
        print(
            f"{PROG}: {where}: {summary(results)}: fix the FAIL lines ({', '.join(names)}), then run it again", file=err
        )
        return EXIT_FAILED
    print(f"{PROG}: {where}: {summary(results)}", file=err)
    return EXIT_OK
