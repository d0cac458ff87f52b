"""One command from nothing to serving.

    python -m tools.up --stage dev [--region R] [--skip-preflight] [--timeout MIN] [--cdk-args ARGS]   # make up

1. preflight (tools.preflight), unless --skip-preflight;
2. is everything the stage seeds in the bucket (the LATEST of each of its seeded models, in the service stack's
   ModelsBucketName)? No service stack: nothing is;
3. no service stack: `cdk deploy --all -c stage=S -c start_service=false` (no tasks to fail on an empty bucket),
   the seed (tools.seed, following its log), then a deploy that starts the services;
   a deployed stack missing some models: the deployed seeder seeds those (`--only`), then the deploy, so a running
   service is never stopped for it; everything seeded: the deploy alone (a re-run on a live stage);
4. the wait until every app's service is steady: one PRIMARY deployment whose rollout is COMPLETED, as many tasks
   running as desired (bounded by --timeout);
5. each app's URL (output App<Name>Url), or "no ingress".

Each failure is one line saying what failed and what to run next. The deploys run the CLI the way `make deploy` does:
node_modules/.bin/cdk with .venv/bin first on PATH. Exit codes: 0 serving; 1 a step failed; 2 bad usage or
settings; 130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import boto3
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError, PartialCredentialsError

from model_delivery.errors import ModelDeliveryError
from modelsync.config import DEFAULT_PREFIX
from modelsync.errors import ModelsyncError
from modelsync.manifest import read_latest_version
from modelsync.s3 import make_client
from stacks.naming import app_output, stack_id
from tools import seed as seed_tool
from tools.pins import add_stage_arguments, stage_settings
from tools.preflight import failed, run_checks
from tools.preflight.cli import make_context, stage_region
from tools.preflight.context import ClientFactory, CommandRunner, Context, SessionClients, run_quietly
from tools.seed import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, SeedError, aws_error, find_stack

PROG = "up"
REPO = Path(__file__).resolve().parent.parent
POLL_SECONDS = 15.0
DEFAULT_TIMEOUT_MINUTES = 30.0
DESCRIBE_SERVICES_MAX = 10  # ECS DescribeServices takes at most 10 services per call

Deployer = Callable[[list[str]], int]  # cdk's arguments -> its exit code


def cdk(args: list[str]) -> int:
    """`cdk ARGS` as the Makefile runs it: the pinned CLI in node_modules, .venv/bin first on PATH (cdk.json runs
    `python3 app.py`, which must find aws-cdk-lib), offline and quiet (README, "Toolchain")."""
    cli = REPO / "node_modules" / ".bin" / "cdk"
    if not cli.exists():
        raise SeedError("node_modules/.bin/cdk not found: run make install", EXIT_USAGE)
    env = {**os.environ, "PATH": f"{REPO / '.venv' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.setdefault("CDK_DISABLE_VERSION_CHECK", "true")
    env.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    return subprocess.run([str(cli), *args], cwd=REPO, env=env, check=False).returncode


@dataclass(frozen=True)
class Aws:
    client: ClientFactory  # CloudFormation, ECS, and whatever preflight asks
    seed: seed_tool.Clients  # the seed command's own (its invoke is never retried)
    s3: Callable[[], Any]  # modelsync's S3 client

    @classmethod
    def from_session(cls, session: boto3.Session) -> Aws:
        return cls(SessionClients(session), seed_tool.Clients.from_session(session), make_client)


class Up:
    def __init__(
        self,
        ctx: Context,
        aws: Aws,
        deploy: Deployer,
        cdk_args: list[str],
        timeout_seconds: float,
        sleep: Callable[[float], None],
        clock: Callable[[], float],
        out: TextIO,
        err: TextIO,
    ) -> None:
        self.ctx, self.aws, self._deploy, self.cdk_args = ctx, aws, deploy, cdk_args
        self.timeout_seconds, self.sleep, self.clock, self.out, self.err = timeout_seconds, sleep, clock, out, err
        self.stage = ctx.settings.stage.name
        self.stack = stack_id(self.stage, "Service")
        self.again = f"make up STAGE={self.stage}"

    def say(self, message: str) -> None:
        print(f"{PROG}: {message}", file=self.err, flush=True)

    def run(self, preflight: bool) -> int:
        if preflight:
            self.preflight()
        outputs = self.service_outputs()
        bucket = (outputs or {}).get("ModelsBucketName")
        if not bucket:
            self.say(
                f"nothing is seeded yet ({self.stack} is not deployed): deploying with the services stopped, "
                "seeding, then starting them"
            )
            self.deploy(stopped=True)
            self.seed(only=None)
        else:
            missing = self.unseeded(bucket)
            if missing:
                # The deployed seeder fills the gap first: a deploy with the services stopped would stop live tasks.
                self.say(
                    f"s3://{bucket}/{DEFAULT_PREFIX} has no LATEST of {', '.join(missing)}: seeding them with "
                    "the deployed stack before the deploy that serves them"
                )
                self.seed(only=missing)
            else:
                self.say(f"every model of stage {self.stage} is in s3://{bucket}/{DEFAULT_PREFIX}")
        self.deploy(stopped=False)
        outputs = self.service_outputs()
        if outputs is None:
            raise SeedError(
                f"{self.stack} has no outputs after the deploy: look at it in the CloudFormation console, "
                f"then run {self.again} again"
            )
        self.wait_until_steady(outputs)
        for app in self.ctx.settings.apps:
            print(f"{app}: {outputs.get(app_output(app, 'Url')) or 'no ingress'}", file=self.out)
        stopped = "" if self.ctx.settings.stage.start_service else " (start_service is false: no tasks)"
        self.say(f"stage {self.stage} is serving{stopped}")
        return EXIT_OK

    def preflight(self) -> None:
        self.say(f"preflight of stage {self.stage} in {self.ctx.region}")
        names = failed(run_checks(self.ctx, self.err))
        if names:
            raise SeedError(
                f"preflight failed ({', '.join(names)}): fix the FAIL lines above, then run {self.again} "
                "again (SKIP_PREFLIGHT=1 deploys without it)"
            )

    def service_outputs(self) -> dict[str, str] | None:
        """The service stack's outputs now (never cached: each deploy changes them)."""
        found = find_stack(self.aws.client("cloudformation"), self.stack)
        return (seed_tool.stack_outputs(found) or None) if found is not None else None

    def unseeded(self, bucket: str) -> list[str]:
        s3 = self.aws.s3()
        seeded = self.ctx.settings.seeded_models
        return [name for name in seeded if read_latest_version(s3, bucket, name, prefix=DEFAULT_PREFIX) is None]

    def deploy(self, *, stopped: bool) -> None:
        args = ["deploy", "--all", "-c", f"stage={self.stage}"]
        if stopped:
            args += ["-c", "start_service=false"]
        args += self.cdk_args
        self.say("cdk " + shlex.join(args))
        code = self._deploy(args)
        if code == EXIT_INTERRUPTED:
            raise KeyboardInterrupt
        if code != 0:
            what = "the deploy with the services stopped" if stopped else "the deploy"
            rollback = (
                ""
                if stopped
                else ("; a service that rolled back says why in its stopped tasks (aws ecs describe-tasks)")
            )
            raise SeedError(
                f"{what} failed (cdk exit {code}, its output above){rollback}: fix the cause, then run "
                f"{self.again} again"
            )

    def seed(self, only: list[str] | None) -> None:
        argv = ["--stack", self.stack] + (["--only", ",".join(only)] if only else [])
        seed_args = f' SEED_ARGS="--only {",".join(only)}"' if only else ""
        self.say(f"seeding, as make seed STAGE={self.stage}{seed_args} does")
        code = seed_tool.main(argv, clients=self.aws.seed, sleep=self.sleep, out=self.err, err=self.err)
        if code == EXIT_INTERRUPTED:
            raise KeyboardInterrupt
        if code != 0:
            unknown = ""
            if only and code == EXIT_USAGE:
                unknown = (
                    f" (if the deployed stack does not know a model yet, deploy it with the services stopped "
                    f'first: make deploy STAGE={self.stage} CDK_ARGS="-c start_service=false")'
                )
            raise SeedError(
                f"seeding failed (exit {code}, its log above){unknown}: fix what it says, then run make "
                f"seed STAGE={self.stage}{seed_args} and {self.again} again"
            )

    def wait_until_steady(self, outputs: dict[str, str]) -> None:
        cluster = outputs.get("ClusterName", "")
        services = {app: outputs.get(app_output(app, "ServiceName"), "") for app in self.ctx.settings.apps}
        lacking = [app_output(app, "ServiceName") for app, name in services.items() if not name]
        if not cluster or lacking:
            raise SeedError(
                f"{self.stack} has no output {', '.join(lacking or ['ClusterName'])}: it is from another "
                f"version of this project; run {self.again} again"
            )
        minutes = self.timeout_seconds / 60
        self.say(f"waiting for {', '.join(services)} to be steady (at most {minutes:g} min)")
        deadline = self.clock() + self.timeout_seconds
        pending = dict(services)
        shown: dict[str, str] = {}  # the last state printed per app
        while True:
            described = self.describe(cluster, pending)
            for app, service in described.items():
                failed_rollout = next(
                    (d for d in service.get("deployments", []) if d.get("rolloutState") == "FAILED"), None
                )
                if failed_rollout is not None:
                    reason = failed_rollout.get("rolloutStateReason", "no reason given")
                    raise SeedError(
                        f"app {app}: its deployment failed ({reason}); last event: {last_event(service)}: "
                        f"read its stopped tasks (aws ecs list-tasks --cluster {cluster} --service-name "
                        f"{pending[app]} --desired-status STOPPED), fix the cause, then run {self.again} "
                        "again"
                    )
                state = describe_state(service)
                if steady(service):
                    self.say(f"{app}: steady, {state}")
                    del pending[app]
                elif shown.get(app) != state:
                    self.say(f"{app}: {state}")
                    shown[app] = state
            if not pending:
                return
            if self.clock() >= deadline:
                stuck = "; ".join(
                    f"app {app} is not steady after {minutes:g} min ({describe_state(described[app])}; "
                    f"last event: {last_event(described[app])})"
                    for app in pending
                )
                raise SeedError(
                    f"{stuck}: see its events and stopped tasks (aws ecs describe-services --cluster "
                    f"{cluster} --services {' '.join(pending.values())}), fix the cause, then run "
                    f"{self.again} again"
                )
            self.sleep(POLL_SECONDS)

    def describe(self, cluster: str, services: dict[str, str]) -> dict[str, dict[str, Any]]:
        """{app: service} for the apps whose services are given."""
        ecs, app_of = self.aws.client("ecs"), {name: app for app, name in services.items()}
        names = list(services.values())
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(names), DESCRIBE_SERVICES_MAX):
            try:
                answer = ecs.describe_services(cluster=cluster, services=names[start : start + DESCRIBE_SERVICES_MAX])
            except ClientError as err:
                raise aws_error("describing the services", err) from None
            for service in answer.get("services", []):
                found[app_of[service["serviceName"]]] = service
        missing = [name for name in names if app_of[name] not in found]
        if missing:
            raise SeedError(
                f"ECS does not know service {', '.join(missing)} in cluster {cluster}: run {self.again} again"
            )
        return found


def steady(service: dict[str, Any]) -> bool:
    deployments = service.get("deployments", [])
    return (
        len(deployments) == 1
        and deployments[0].get("status") == "PRIMARY"
        and deployments[0].get("rolloutState") == "COMPLETED"
        and service.get("runningCount") == service.get("desiredCount")
    )


def describe_state(service: dict[str, Any]) -> str:
    deployments = service.get("deployments", [])
    primary: dict[str, Any] = next((d for d in deployments if d.get("status") == "PRIMARY"), {})
    return (
        f"{service.get('runningCount', 0)} of {service.get('desiredCount', 0)} tasks running, rollout "
        f"{primary.get('rolloutState', 'unknown')}, {len(deployments)} deployment(s)"
    )


def last_event(service: dict[str, Any]) -> str:
    events = service.get("events") or []  # newest first
    return repr(events[0].get("message", "")) if events else "none yet"


def minutes(value: str) -> float:
    number = float(value)
    if not number > 0:
        raise argparse.ArgumentTypeError(f"{value!r} is not a positive number of minutes")
    return number


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tools.up", description=__doc__.split("\n\n")[0])
    add_stage_arguments(parser)
    parser.add_argument("--skip-preflight", action="store_true", help="deploy without running preflight first")
    parser.add_argument(
        "--timeout",
        type=minutes,
        default=DEFAULT_TIMEOUT_MINUTES,
        metavar="MIN",
        help=f"how long to wait for the services to be steady (default {DEFAULT_TIMEOUT_MINUTES:g})",
    )
    parser.add_argument(
        "--cdk-args",
        default="",
        metavar="ARGS",
        help='more arguments for cdk deploy, e.g. "--require-approval never" (make: CDK_ARGS)',
    )
    return parser


def main(
    argv: list[str] | None = None,
    *,
    aws: Aws | None = None,
    deploy: Deployer = cdk,
    run: CommandRunner = run_quietly,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    args = build_parser().parse_args(argv)
    stage = args.stage
    try:
        if aws is None:
            region = stage_region(args.region, stage_settings(args.cdk_json, stage).stage.region)
            aws = Aws.from_session(boto3.Session(region_name=region))
        ctx = make_context(args.cdk_json, stage, args.region, aws.client, aws.s3, run)
        up = Up(ctx, aws, deploy, shlex.split(args.cdk_args), args.timeout * 60, sleep, clock, out, err)
        return up.run(preflight=not args.skip_preflight)
    except ModelDeliveryError as exc:  # a bad setting in cdk.json
        print(f"{PROG}: error: {exc}", file=err)
        return EXIT_USAGE
    except (SeedError, ModelsyncError) as exc:
        print(f"{PROG}: error: {exc}", file=err)
        return exc.exit_code
    except (NoCredentialsError, PartialCredentialsError, NoRegionError) as exc:
        print(f"{PROG}: error: {exc}: set AWS_PROFILE / AWS_REGION, or run aws sso login", file=err)
        return EXIT_USAGE
    except BotoCoreError as exc:
        print(
            f"{PROG}: error: AWS call failed: {exc}: check the network, then run make up STAGE={stage} again", file=err
        )
        return EXIT_FAILED
    except KeyboardInterrupt:
        print(
            f"\n{PROG}: interrupted: run make up STAGE={stage} again to carry on (it starts from what is deployed "
            "and seeded)",
            file=err,
        )
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
