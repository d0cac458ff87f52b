"""Seed a deployed stack: start the seeding task through the seed-runner Lambda and follow it.

    python -m tools.seed --stack ModelDelivery-dev-Service [--region R] [--only A,B | --app NAME] [--no-wait]

Reads the service stack's outputs, invokes the seed runner, prints the seeding task's CloudWatch log lines as they
arrive; when it ends with exit 0, finds the signing task the stack starts after it (it signs and mirrors what the
seed staged) and follows that one too. Exits with the failing container's exit code, 0 when both succeeded. Exit
codes and messages: docs/operations-seed.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
)

from stacks.naming import app_output

PROG = "seed"
POLL_SECONDS = 5.0
MISSING_TASK_POLLS = 6  # how long (x POLL_SECONDS) a just-started task may be invisible
# After the task stops, CloudWatch may still deliver its last lines (the summary table): read on
# until QUIET_POLLS polls in a row bring nothing, for at most DRAIN_MAX_POLLS (x POLL_SECONDS).
QUIET_POLLS = 2
# After a seed that ended with exit 0, EventBridge and the seed runner start the signing task within seconds.
SIGN_START_POLLS = 24
SIGN_STARTED_BY = "sign-after-"  # + the seeding task's id (lambdas/seed_runner/handler.py)
DRAIN_MAX_POLLS = 12
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
# Stack outputs this tool reads (docs/contracts.md, "Stacks and outputs").
REQUIRED_OUTPUTS = ("ClusterName", "SeedRunnerFunctionName", "SeedContainerName")
RUNNER_RESULT_KEYS = ("taskArn", "taskId", "logGroupName", "logStreamName")
# errorType the seed runner raises for a bad request (lambdas/seed_runner/handler.py).
RUNNER_BAD_REQUEST = "InvalidSeedRequest"
# Invoke once and wait as long as a Lambda may run: a retried or timed-out-and-retried invoke
# would be a second RunTask from the operator's point of view.
INVOKE_CONFIG = Config(read_timeout=900, retries={"total_max_attempts": 1})
CREDENTIAL_ERROR_CODES = frozenset(
    {
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "SignatureDoesNotMatch",
        "InvalidSignatureException",
    }
)


class SeedError(Exception):
    """A failure reported as one line on stderr, with the exit code to use."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class Clients:
    cloudformation: Any
    lambda_: Any
    ecs: Any
    logs: Any

    @classmethod
    def from_session(cls, session: boto3.Session) -> Clients:
        polling = Config(retries={"mode": "standard"})
        return cls(
            cloudformation=session.client("cloudformation", config=polling),
            lambda_=session.client("lambda", config=INVOKE_CONFIG),
            ecs=session.client("ecs", config=polling),
            logs=session.client("logs", config=polling),
        )


def aws_error(action: str, err: ClientError) -> SeedError:
    """One line for an AWS API error, with the fix when we know it."""
    error = err.response.get("Error", {})
    code, message = error.get("Code", "Error"), error.get("Message", str(err))
    if code in CREDENTIAL_ERROR_CODES:
        return SeedError(
            f"AWS rejected the credentials ({code}: {message}): refresh them (aws sso login, or new keys) and retry",
            EXIT_USAGE,
        )
    if "AccessDenied" in code:
        return SeedError(
            f"access denied while {action}: {message}: use a role allowed to do this "
            "(see docs/operations-seed.md, 'Permissions')"
        )
    return SeedError(f"{action} failed: {code}: {message}")


def find_stack(cloudformation: Any, stack: str) -> dict[str, Any] | None:
    """The stack as DescribeStacks gives it, or None when it does not exist in the client's region."""
    try:
        stacks = cloudformation.describe_stacks(StackName=stack)["Stacks"]
    except ClientError as err:
        # CloudFormation has no error code of its own for this: a ValidationError "Stack with id X does not exist".
        if "does not exist" in err.response.get("Error", {}).get("Message", ""):
            return None
        raise aws_error(f"reading stack {stack}", err) from None
    found: dict[str, Any] = stacks[0]
    return found


def stack_outputs(description: dict[str, Any]) -> dict[str, str]:
    return {o["OutputKey"]: o.get("OutputValue", "") for o in description.get("Outputs", [])}


def read_stack_outputs(cloudformation: Any, stack: str, required: tuple[str, ...] = REQUIRED_OUTPUTS) -> dict[str, str]:
    description = find_stack(cloudformation, stack)
    if description is None:
        region = cloudformation.meta.region_name
        raise SeedError(
            f"stack {stack} not found in region {region}: check --stack and --region "
            "(the service stack is ModelDelivery-<stage>-Service)",
            EXIT_USAGE,
        )
    outputs = stack_outputs(description)
    missing = [key for key in required if not outputs.get(key)]
    if missing:
        raise SeedError(
            f"stack {stack} has no output {', '.join(missing)}: it was deployed from "
            "another version of this project; deploy the current one (cdk deploy)",
            EXIT_USAGE,
        )
    return outputs


def invoke_seed_runner(lambda_: Any, function_name: str, only: list[str] | None) -> dict[str, str]:
    event = {"only": only} if only else {}
    try:
        response = lambda_.invoke(
            FunctionName=function_name, InvocationType="RequestResponse", Payload=json.dumps(event).encode()
        )
    except ClientError as err:
        raise aws_error(f"invoking the seed runner {function_name}", err) from None
    raw = response["Payload"].read()
    try:
        payload = json.loads(raw) if raw else None
    except ValueError:
        payload = None

    if response.get("FunctionError"):
        detail = payload if isinstance(payload, dict) else {}
        error_type = detail.get("errorType", response["FunctionError"])
        message = str(detail.get("errorMessage", raw.decode(errors="replace"))).strip()
        message = message.splitlines()[0] if message else "no message"
        code = EXIT_USAGE if error_type == RUNNER_BAD_REQUEST else EXIT_FAILED
        raise SeedError(f"the seed runner failed: {error_type}: {message}", code)

    if not isinstance(payload, dict) or not all(isinstance(payload.get(k), str) for k in RUNNER_RESULT_KEYS):
        raise SeedError(
            f"the seed runner answered {raw[:200]!r}, not {{{', '.join(RUNNER_RESULT_KEYS)}}}: "
            "the function and this tool are from different versions; redeploy"
        )
    return payload


class LogFollower:
    """Prints the new events of one CloudWatch log stream each time poll() is called."""

    def __init__(self, logs: Any, group: str, stream: str, out: TextIO) -> None:
        self._logs, self._group, self._stream, self._out = logs, group, stream, out
        self._token: str | None = None
        self.seen_stream = False

    def poll(self) -> int:
        """Print the events that arrived since the last call; return how many there were."""
        printed = 0
        while True:
            request = {"logGroupName": self._group, "logStreamName": self._stream, "startFromHead": True}
            if self._token:
                request["nextToken"] = self._token
            try:
                response = self._logs.get_log_events(**request)
            except ClientError as err:
                # The awslogs driver creates the stream when the container starts.
                if err.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                    return printed
                raise aws_error(f"reading log stream {self._stream}", err) from None
            self.seen_stream = True
            for event in response.get("events", []):
                print(event.get("message", "").rstrip("\n"), file=self._out, flush=True)
                printed += 1
            token = response.get("nextForwardToken")
            # The same token back means we are at the end of the stream for now.
            if not token or token == self._token:
                return printed
            self._token = token


def drain_logs(follower: LogFollower, sleep: Callable[[float], None]) -> bool:
    """Read the stream of a stopped task until it stays quiet; False if it never did in time."""
    quiet = 0
    for _ in range(DRAIN_MAX_POLLS):
        sleep(POLL_SECONDS)
        quiet = 0 if follower.poll() else quiet + 1
        if quiet >= QUIET_POLLS:
            return True
    return False


def describe_task(ecs: Any, cluster: str, task_arn: str) -> dict[str, Any] | None:
    """The task, or None when ECS does not list it (yet, or any more)."""
    try:
        response = ecs.describe_tasks(cluster=cluster, tasks=[task_arn])
    except ClientError as err:
        raise aws_error(f"describing task {task_arn}", err) from None
    tasks = response.get("tasks") or []
    return tasks[0] if tasks else None


def wait_until_stopped(
    ecs: Any,
    cluster: str,
    task_arn: str,
    follower: LogFollower,
    sleep: Callable[[float], None],
    err: TextIO,
    what: str = "seeding",
) -> dict[str, Any]:
    """Follow the logs until ECS reports the task STOPPED; return the stopped task."""
    status, unseen_polls = None, 0
    while True:
        follower.poll()
        task = describe_task(ecs, cluster, task_arn)
        if task is None:
            # DescribeTasks is eventually consistent: a task just started may be MISSING briefly.
            unseen_polls += 1
            if status is not None or unseen_polls > MISSING_TASK_POLLS:
                raise SeedError(
                    f"ECS does not list the {what} task {task_arn}: look for it in the cluster's stopped tasks and its "
                    "log stream"
                )
            sleep(POLL_SECONDS)
            continue
        if task.get("lastStatus") != status:
            status = task.get("lastStatus")
            print(f"{PROG}: task is {status}", file=err, flush=True)
        if status == "STOPPED":
            return task
        sleep(POLL_SECONDS)


def task_exit(task: dict[str, Any], container_name: str, what: str, err: TextIO) -> int:
    """The task container's exit code (`what`: seeding or signing); explains the stop on stderr when it is not 0."""
    container: dict[str, Any] = next((c for c in task.get("containers", []) if c.get("name") == container_name), {})
    code = container.get("exitCode")
    if code == 0:
        print(f"{PROG}: {what} finished: exit code 0", file=err)
        return EXIT_OK
    task_id = task["taskArn"].rsplit("/", 1)[-1]
    if code is None:
        print(f"{PROG}: {what} task {task_id} stopped before container {container_name} exited", file=err)
    else:
        print(f"{PROG}: {what} failed: container {container_name} exit code {code}", file=err)
    stop_code = task.get("stopCode")
    reason = task.get("stoppedReason", "none given")
    print(f"{PROG}: stopped reason: {reason}" + (f" ({stop_code})" if stop_code else ""), file=err)
    if container.get("reason"):
        print(f"{PROG}: container reason: {container['reason']}", file=err)
    return code if isinstance(code, int) and 0 < code < 256 else EXIT_FAILED


def parse_only(value: str | None) -> list[str] | None:
    """Split --only A,B. The seed runner validates the names (one rule, one place)."""
    if value is None:
        return None
    names = [name.strip() for name in value.split(",") if name.strip()]
    if not names:
        raise SeedError("--only names no model: give NAME[,NAME...] or leave it out", EXIT_USAGE)
    return names


def app_models(outputs: dict[str, str], app: str) -> str:
    """The models one app serves, from the stack's outputs (`Apps`, `App<Id>Models`)."""
    apps = [name for name in outputs.get("Apps", "").split(",") if name]
    if app not in apps:
        raise SeedError(
            f"--app {app!r} is not an app of this stack: use one of {', '.join(apps) or '(none)'} "
            "(or leave --app out to seed every app's models)",
            EXIT_USAGE,
        )
    key = app_output(app, "Models")
    if not outputs.get(key):
        raise SeedError(f"the stack has no output {key}: deploy the service stack again, then retry", EXIT_USAGE)
    return outputs[key]


def seed(args: argparse.Namespace, clients: Clients, sleep: Callable[[float], None], out: TextIO, err: TextIO) -> int:
    if args.app and args.only:
        raise SeedError("--app and --only both choose what to seed: give one of them", EXIT_USAGE)
    only = parse_only(args.only)  # checked before any AWS call
    outputs = read_stack_outputs(clients.cloudformation, args.stack)
    if args.app:
        only = parse_only(app_models(outputs, args.app))
    started = invoke_seed_runner(clients.lambda_, outputs["SeedRunnerFunctionName"], only)
    cluster = outputs["ClusterName"]
    print(f"{PROG}: started seeding task {started['taskId']} on cluster {cluster}", file=err)
    print(f"{PROG}: logs: {started['logGroupName']} {started['logStreamName']}", file=err, flush=True)
    if args.no_wait:
        print(
            f"{PROG}: not waiting; read its log (again for new lines) with: "
            f"{log_hint(clients.logs, started['logGroupName'], started['logStreamName'])}",
            file=err,
        )
        return EXIT_OK
    code = follow(clients, cluster, started, outputs["SeedContainerName"], "seeding", sleep, out, err)
    if code != EXIT_OK or not outputs.get("SignLogGroupName"):
        return code
    return follow_signing(clients, cluster, started["taskId"], outputs, sleep, out, err)


def follow(
    clients: Clients,
    cluster: str,
    started: dict[str, str],
    container: str,
    what: str,
    sleep: Callable[[float], None],
    out: TextIO,
    err: TextIO,
) -> int:
    """Print a task's log as it arrives until it stops; its container's exit code (130 when interrupted)."""
    follower = LogFollower(clients.logs, started["logGroupName"], started["logStreamName"], out)
    try:
        task = wait_until_stopped(clients.ecs, cluster, started["taskArn"], follower, sleep, err, what)
    except KeyboardInterrupt:
        print(
            f"\n{PROG}: stopped waiting; the {what} task keeps running. Stop it with: "
            f"aws ecs stop-task --cluster {cluster} --task {started['taskId']}",
            file=err,
        )
        return EXIT_INTERRUPTED
    rest_of_logs = log_hint(clients.logs, started["logGroupName"], started["logStreamName"])
    try:
        if not drain_logs(follower, sleep):
            print(
                f"{PROG}: log lines were still arriving {DRAIN_MAX_POLLS * POLL_SECONDS:.0f} s after "
                f"the task stopped; read the rest with: {rest_of_logs}",
                file=err,
            )
    except KeyboardInterrupt:
        # The task has stopped, so its result is known: report it rather than 130.
        print(f"\n{PROG}: stopped reading the logs; read the rest with: {rest_of_logs}", file=err)
    if not follower.seen_stream:
        print(f"{PROG}: the task wrote no log stream ({started['logStreamName']})", file=err)
    return task_exit(task, container, what, err)


def follow_signing(
    clients: Clients,
    cluster: str,
    seed_task_id: str,
    outputs: dict[str, str],
    sleep: Callable[[float], None],
    out: TextIO,
    err: TextIO,
) -> int:
    """The seeding task staged what it published; the stack's rule starts the signing task (startedBy
    sign-after-<seeding task id>): find it and follow it, its exit code is the seed's result."""
    started_by = f"{SIGN_STARTED_BY}{seed_task_id}"
    print(f"{PROG}: waiting for the signing task the stack starts after a seed ({started_by})", file=err, flush=True)
    for _ in range(SIGN_START_POLLS):
        task_arn = find_task(clients.ecs, cluster, started_by)
        if task_arn:
            break
        sleep(POLL_SECONDS)
    else:
        raise SeedError(
            f"no signing task started within {SIGN_START_POLLS * POLL_SECONDS:.0f} s after the seed: nothing it "
            "staged is signed yet; look at the seed runner's log and the SeedRunnerErrors alarm, then start it with "
            f"aws lambda invoke --function-name {outputs['SeedRunnerFunctionName']} --payload "
            f'\'{{"sign_after": "<the seeding task ARN>"}}\' --cli-binary-format raw-in-base64-out /dev/stdout'
        )
    task_id = task_arn.rsplit("/", 1)[-1]
    started = {
        "taskArn": task_arn,
        "taskId": task_id,
        "logGroupName": outputs["SignLogGroupName"],
        "logStreamName": f"{outputs['SignLogStreamPrefix']}/{outputs['SignContainerName']}/{task_id}",
    }
    print(f"{PROG}: signing task {task_id}; logs: {started['logGroupName']} {started['logStreamName']}", file=err)
    return follow(clients, cluster, started, outputs["SignContainerName"], "signing", sleep, out, err)


def find_task(ecs: Any, cluster: str, started_by: str) -> str | None:
    """The ARN of a task started with `started_by`, running or already stopped, or None."""
    for status in ("RUNNING", "STOPPED"):
        try:
            arns = ecs.list_tasks(cluster=cluster, startedBy=started_by, desiredStatus=status).get("taskArns", [])
        except ClientError as err:
            raise aws_error("listing the signing task", err) from None
        if arns:
            return arns[0]
    return None


def log_hint(logs: Any, group: str, stream: str) -> str:
    """How to read a task's log with what the project installs: AWS CLI v1 (the benchmark's) has no
    `aws logs tail`, `get-log-events` exists in v1 and v2; and the console page of the stream."""
    region = logs.meta.region_name

    # The console's fragment encodes names twice, with '$' for '%' ('/' -> '$252F').
    def part(name: str) -> str:
        return urllib.parse.quote(urllib.parse.quote(name, safe=""), safe="").replace("%", "$")

    console = (
        f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}#logsV2:log-groups/"
        f"log-group/{part(group)}/log-events/{part(stream)}"
    )
    return (
        f"aws logs get-log-events --region {region} --log-group-name {group} --log-stream-name {stream} "
        f"--start-from-head --query 'events[].message' --output text (or open {console})"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tools.seed", description="Run the seeding task of a deployed stack and follow it to the end."
    )
    parser.add_argument("--stack", required=True, help="service stack name, e.g. ModelDelivery-dev-Service")
    parser.add_argument("--region", help="AWS region (default: the standard AWS configuration chain)")
    parser.add_argument("--only", metavar="A,B", help="seed only these catalog entries")
    parser.add_argument("--app", metavar="NAME", help="seed only the models of this app (default: every app's)")
    parser.add_argument("--no-wait", action="store_true", help="start the task and return")
    return parser


def main(
    argv: list[str] | None = None,
    *,
    clients: Clients | None = None,
    sleep: Callable[[float], None] = time.sleep,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    args = build_parser().parse_args(argv)
    try:
        if clients is None:
            session = boto3.Session(region_name=args.region)
            if not session.region_name:
                raise SeedError("no AWS region: pass --region or set AWS_REGION (or a profile region)", EXIT_USAGE)
            clients = Clients.from_session(session)
        return seed(args, clients, sleep, out, err)
    except SeedError as exc:
        print(f"{PROG}: error: {exc}", file=err)
        return exc.exit_code
    except (NoCredentialsError, PartialCredentialsError) as exc:
        print(
            f"{PROG}: error: no usable AWS credentials ({exc}): set AWS_PROFILE, run aws sso login, "
            "or export credentials",
            file=err,
        )
        return EXIT_USAGE
    except NoRegionError:
        print(f"{PROG}: error: no AWS region: pass --region or set AWS_REGION", file=err)
        return EXIT_USAGE
    except BotoCoreError as exc:
        print(f"{PROG}: error: AWS call failed: {exc}", file=err)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print(f"\n{PROG}: interrupted", file=err)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
