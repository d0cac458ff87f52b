"""Pin the apps' model versions for a stage, and check pins before a deploy.

    python -m tools.pins lock  --stage dev [--app NAME] [--bucket B] [--region R]   # make pins STAGE=dev [APP=NAME]
    python -m tools.pins check --stage dev [--app NAME] [--bucket B] [--region R]   # make check-pins STAGE=dev

`lock` reads the current LATEST of every model an app serves and writes them as `NAME@VERSION` into
`apps.NAME.models` of that stage in cdk.json: the lock a team commits. A deploy then puts exactly these
versions into the app's task definition, so rolling a model out or back is "edit the pin, deploy", with the
deployment circuit breaker as the safety net. `check` verifies that every pinned version exists in the
bucket (its manifest), so a deploy never starts tasks whose init container must fail. Both work on every app
of the stage unless --app names one. The bucket comes from the service stack's outputs (ModelsBucketName)
unless --bucket is given.

Exit codes: 0 done / every pin present; 1 a pin is missing or a model has no LATEST; 2 bad usage or
configuration (one line on stderr).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import boto3
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError

from model_delivery.errors import ModelDeliveryError
from modelsync.config import DEFAULT_PREFIX
from modelsync.errors import ModelsyncError
from modelsync.manifest import read_latest_version, read_manifest
from modelsync.s3 import make_client
from stacks.naming import stack_id
from stacks.settings import APPS, CONTEXT_KEY, AppSettings, Settings, load_settings
from tools.seed import EXIT_FAILED, EXIT_OK, EXIT_USAGE, SeedError, read_stack_outputs

PROG = "pins"
CDK_JSON = Path(__file__).resolve().parent.parent / "cdk.json"


def cdk_context(cdk_json: Path) -> dict[str, Any]:
    context: dict[str, Any] = json.loads(cdk_json.read_text())["context"]
    return context


def stage_settings(cdk_json: Path, stage: str) -> Settings:
    return load_settings({**cdk_context(cdk_json), "stage": stage})


def chosen_apps(settings: Settings, app: str | None) -> list[AppSettings]:
    if app is None:
        return list(settings.apps.values())
    if app not in settings.apps:
        raise SeedError(
            f"--app {app!r} is not an app of stage {settings.stage.name}: use one of {', '.join(settings.apps)}",
            EXIT_USAGE,
        )
    return [settings.apps[app]]


def bucket_for(args: argparse.Namespace, settings: Settings, cloudformation: Any | None) -> str:
    if args.bucket:
        return args.bucket
    if cloudformation is None:
        region = args.region or settings.stage.region
        session = boto3.Session(region_name=region)
        if not session.region_name:
            raise SeedError(
                "no AWS region: pass --region, set 'region' for the stage in cdk.json, or set AWS_REGION", EXIT_USAGE
            )
        cloudformation = session.client("cloudformation")
    stack = stack_id(settings.stage.name, "Service")
    return read_stack_outputs(cloudformation, stack, required=("ModelsBucketName",))["ModelsBucketName"]


def lock(cdk_json: Path, settings: Settings, apps: list[AppSettings], client: Any, bucket: str, out: TextIO) -> int:
    stage = settings.stage.name
    latest: dict[str, str | None] = {}
    for name in dict.fromkeys(n for app in apps for n in app.served_names):
        latest[name] = read_latest_version(client, bucket, name, prefix=DEFAULT_PREFIX)
    missing = [name for name, version in latest.items() if version is None]
    if missing:
        raise SeedError(
            f"no LATEST for {', '.join(missing)} in s3://{bucket}/{DEFAULT_PREFIX}: seed it first "
            f'(make seed STAGE={stage} SEED_ARGS="--only {",".join(missing)}"); nothing written'
        )
    document = json.loads(cdk_json.read_text())
    stage_apps = document["context"][CONTEXT_KEY]["stages"][stage].setdefault(APPS, {})
    for app in apps:
        block = stage_apps.setdefault(app.name, {})
        before = dict(spec.partition("@")[::2] for spec in block.get("models", []))
        pins = [f"{name}@{latest[name]}" for name in app.served_names]
        block["models"] = pins
        for spec in pins:
            name, _, version = spec.partition("@")
            was = before.get(name)
            change = "unchanged" if was == version else f"was {was or 'unpinned'}"
            print(f"{app.name}: {name}@{version} ({change})", file=out)
    cdk_json.write_text(json.dumps(document, indent=2) + "\n")
    print(
        f"wrote the pins of {', '.join(app.name for app in apps)} to {cdk_json.name} (stage {stage}): "
        "review, commit, then make deploy",
        file=out,
    )
    return EXIT_OK


# What to do about a pin the bucket lacks (`make check-pins` and `make preflight` say the same).
MISSING_PIN_FIX = "tasks would fail to start; publish or seed it, or pin a version `modelsync list` shows"


@dataclass(frozen=True)
class PinState:
    app: str
    spec: str  # NAME or NAME@VERSION, as the app serves it
    present: bool | None  # None: not pinned (follows LATEST)


def pin_states(apps: list[AppSettings], client: Any, bucket: str) -> list[PinState]:
    """Whether each pinned version of each app is in the bucket (its manifest exists): the one pin check."""
    states = []
    for app in apps:
        for spec in app.served_models:
            name, _, version = spec.partition("@")
            present = (
                None if not version else read_manifest(client, bucket, name, version, prefix=DEFAULT_PREFIX) is not None
            )
            states.append(PinState(app.name, spec, present))
    return states


def check(apps: list[AppSettings], client: Any, bucket: str, out: TextIO, err: TextIO) -> int:
    states = pin_states(apps, client, bucket)
    for state in states:
        if state.present is None:
            print(f"{state.app}: {state.spec}: not pinned, follows LATEST at each task start", file=out)
        elif state.present:
            print(f"{state.app}: {state.spec}: present", file=out)
        else:
            print(
                f"{PROG}: error: {state.app}: {state.spec} is not in s3://{bucket}/{DEFAULT_PREFIX}: {MISSING_PIN_FIX}",
                file=err,
            )
    return EXIT_FAILED if any(state.present is False for state in states) else EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tools.pins", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "action",
        choices=("lock", "check"),
        help="lock: write the current LATEST of each served model as pins; check: every pin exists",
    )
    add_stage_arguments(parser)
    parser.add_argument("--app", help="only this app (default: every app of the stage)")
    parser.add_argument("--bucket", help="models bucket (default: the service stack's ModelsBucketName output)")
    return parser


def add_stage_arguments(parser: argparse.ArgumentParser) -> None:
    """--stage and --region as every tool that reads a stage of cdk.json takes them (pins, preflight, up)."""
    parser.add_argument("--stage", default="dev", help="stage in cdk.json (default dev)")
    parser.add_argument("--region", help="AWS region (default: the stage's region, then the AWS configuration)")
    parser.add_argument("--cdk-json", type=Path, default=CDK_JSON, help=argparse.SUPPRESS)


def main(
    argv: list[str] | None = None,
    *,
    cloudformation: Any | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    args = build_parser().parse_args(argv)
    try:
        settings = stage_settings(args.cdk_json, args.stage)
        apps = chosen_apps(settings, args.app)
        if args.action == "check" and not any(app.pinned_models for app in apps):
            print(f"stage {settings.stage.name} pins no model versions: nothing to check", file=out)
            return EXIT_OK
        bucket = bucket_for(args, settings, cloudformation)
        client = make_client()
        if args.action == "lock":
            return lock(args.cdk_json, settings, apps, client, bucket, out)
        return check(apps, client, bucket, out, err)
    except ModelDeliveryError as exc:  # a bad setting or catalog
        print(f"{PROG}: error: {exc}", file=err)
        return EXIT_USAGE
    except (SeedError, ModelsyncError) as exc:
        print(f"{PROG}: error: {exc}", file=err)
        return exc.exit_code
    except (NoCredentialsError, NoRegionError) as exc:
        print(f"{PROG}: error: {exc}: set AWS_PROFILE / AWS_REGION, or run aws sso login", file=err)
        return EXIT_USAGE
    except (ClientError, BotoCoreError) as exc:
        print(f"{PROG}: error: AWS call failed: {exc}", file=err)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
