"""Task notifier: turns "ECS Task State Change" events (STOPPED) of model delivery's tasks into what an
operator gets without watching anything.

  seeding task stopped  ->  its outcome is published to the alarm topic: exit code, stopped reason and the
                            seed's summary line (with its FAILED lines) read from the task's log stream,
                            whether or not anyone ran `make seed`; plus an EMF record (SeedTasks, SeedTaskFailed)
  service task stopped  ->  when its init container (model-pull / model-verify) failed, or the task failed to
                            start before it could run: an EMF record InitFailures = 1 by Stage and App, which
                            that app's InitContainerFailed alarm pages on (an alarm, not a message per task: a
                            failing deployment stops many tasks); any other stop the rule let through: 0

Environment (set by model_delivery.notifier.TaskNotifier):
  TOPIC_ARN, STAGE, METRICS_NAMESPACE;
  optional together: SEED_TASK_FAMILY, SEED_CONTAINER_NAME, SEED_LOG_GROUP_NAME, SEED_LOG_STREAM_PREFIX
Events: the seeding rule delivers the EventBridge event as it is ({"source": "aws.ecs", "detail-type": "ECS
Task State Change", "detail": {...}}); each app's rule wraps it as {"watch": {"app", "family",
"init_container"}, "event": <the event>}, so adding an app adds a rule and changes nothing here.
Returns what it did ({"action": ...}).

A signing task (`modelsync sign`, started after every seeding task that ended with exit 0) is published the same
way (SIGN_* variables; metrics SignTasks, SignTaskFailed).

Only boto3 from the Lambda runtime is used, so the function ships as this one file.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

# The summary lines `modelsync seed` and `modelsync sign` print last (before their FAILED lines).
SUMMARY = re.compile(r"^(seed: \d+ published, \d+ unchanged, \d+ failed|sign: \d+ signed, \d+ refused, \d+ failed)")
FAILED_LINES_SHOWN = 20
LINE_CHARS = 400  # of one FAILED line in the message (SNS messages stay far below their 256 KB)
SUBJECT_CHARS = 100  # SNS's limit for a subject
# The last lines of a stopped task can reach CloudWatch Logs seconds after its STOPPED event (tools/seed.py waits
# for them too): look again, for about 30 s.
LOG_ATTEMPTS = 7
LOG_WAIT_SECONDS = 5.0
LOG_PAGE = 200  # events per read, newest first; the summary is among the last lines the seed prints
LOG_PAGES = 3
# A task stopped from outside (a deployment, scale-in, an operator, Spot) ends its containers with SIGTERM
# (143) or SIGKILL (137): that is no init failure, even when the init container was still pulling.
OUTSIDE_STOPS = frozenset({"UserInitiated", "ServiceSchedulerInitiated", "SpotInterruption", "TerminationNotice"})
STOP_SIGNAL_EXITS = frozenset({137, 143})
EVENT_SOURCE, EVENT_TYPE = "aws.ecs", "ECS Task State Change"


class ConfigError(Exception):
    """The function's environment is incomplete (a deployment problem)."""


class InvalidEvent(ValueError):
    """Not a STOPPED "ECS Task State Change" event: the rule or a caller sent something else."""


@dataclass(frozen=True)
class Job:
    """A one-shot task whose result is published: the seeding task (`seed`) or the signing task (`sign`)."""

    label: str  # "seed" or "sign": the subject, the message and the metrics' names
    family: str
    container: str
    log_group: str
    stream_prefix: str


@dataclass(frozen=True)
class Config:
    topic_arn: str
    stage: str
    namespace: str
    jobs: tuple[Job, ...] = ()

    def job(self, family: str) -> Job | None:
        return next((job for job in self.jobs if job.family == family), None)


JOB_VARIABLES = ("TASK_FAMILY", "CONTAINER_NAME", "LOG_GROUP_NAME", "LOG_STREAM_PREFIX")
JOBS = {"SEED": "seed", "SIGN": "sign"}  # variable prefix -> label
# Metric names per job (docs/runtime.md, "Metrics"): the task notifier's, the alarms and the dashboard read them.
JOB_METRICS = {"seed": ("SeedTasks", "SeedTaskFailed"), "sign": ("SignTasks", "SignTaskFailed")}


def load_config(environ: Mapping[str, str]) -> Config:
    def required(name: str) -> str:
        value = environ.get(name, "").strip()
        if not value:
            raise ConfigError(
                f"environment variable {name} is missing or empty: set it on the function "
                "(the service stack does this; redeploy it)"
            )
        return value

    jobs = []
    for prefix, label in JOBS.items():
        names = [f"{prefix}_{suffix}" for suffix in JOB_VARIABLES]
        values = [environ.get(name, "").strip() for name in names]
        if any(values) and not all(values):
            missing = [name for name, value in zip(names, values, strict=True) if not value]
            raise ConfigError(
                f"environment variables {', '.join(names)} go together, and "
                f"{', '.join(missing)} is missing: set all four or none (redeploy the service stack)"
            )
        if all(values):
            jobs.append(Job(label, *values))
    return Config(required("TOPIC_ARN"), required("STAGE"), required("METRICS_NAMESPACE"), tuple(jobs))


@dataclass(frozen=True)
class Watch:
    """Which app's service tasks a rule watches (the rule's input beside the event)."""

    app: str
    family: str
    init_container: str


def unwrap(event: Any) -> tuple[Watch | None, Any]:
    """(the watch of an app's rule, the event) or (None, the event as delivered by the seeding rule)."""
    if not (isinstance(event, dict) and "watch" in event):
        return None, event
    watch = event["watch"]
    if not isinstance(watch, dict) or not all(
        isinstance(watch.get(k), str) for k in ("app", "family", "init_container")
    ):
        raise InvalidEvent("the rule's input 'watch' needs the strings app, family and init_container")
    return Watch(watch["app"], watch["family"], watch["init_container"]), event.get("event")


def stopped_task(event: Any) -> dict:
    """The `detail` of a STOPPED task event, checked enough to be read safely."""
    if not isinstance(event, dict) or event.get("source") != EVENT_SOURCE or event.get("detail-type") != EVENT_TYPE:
        raise InvalidEvent(
            f"expected an EventBridge event with source {EVENT_SOURCE!r} and detail-type "
            f"{EVENT_TYPE!r}: the rule's pattern must select only those"
        )
    detail = event.get("detail")
    if not isinstance(detail, dict) or detail.get("lastStatus") != "STOPPED":
        raise InvalidEvent("expected a task whose lastStatus is STOPPED: the rule's pattern must select only those")
    for key in ("taskArn", "taskDefinitionArn"):
        if not isinstance(detail.get(key), str):
            raise InvalidEvent(f"the event's detail has no {key}")
    if not isinstance(detail.get("containers", []), list):
        raise InvalidEvent("the event's detail.containers is not a list")
    return detail


def family_of(task_definition_arn: str) -> str:
    """arn:aws:ecs:REGION:ACCOUNT:task-definition/FAMILY:REVISION -> FAMILY."""
    return task_definition_arn.rsplit("/", 1)[-1].rsplit(":", 1)[0]


def container(detail: dict, name: str) -> dict:
    found = [c for c in detail.get("containers", []) if isinstance(c, dict) and c.get("name") == name]
    return found[0] if found else {}


def task_id(detail: dict) -> str:
    return detail["taskArn"].rsplit("/", 1)[-1]


def stop_description(detail: dict) -> str:
    reason = detail.get("stoppedReason") or "no stopped reason given"
    return f"{reason} ({detail['stopCode']})" if detail.get("stopCode") else reason


def handle(config: Config, event: Any, sns: Any, logs: Any, sleep=time.sleep) -> dict:
    watch, event = unwrap(event)
    detail = stopped_task(event)
    family = family_of(detail["taskDefinitionArn"])
    if watch is not None and family == watch.family:
        return service_task_stopped(config, detail, watch)
    job = config.job(family) if watch is None else None
    if job is not None:
        return job_stopped(config, job, detail, sns, logs, sleep)
    expected = f"the service task of app {watch.app!r}" if watch is not None else "the seeding or signing task"
    print(f"ignored: task {detail['taskArn']} of family {family!r} is not {expected}")
    return {"action": "ignored", "taskArn": detail["taskArn"]}


# -- the seeding task -------------------------------------------------------------------------------------------


def job_stopped(config: Config, job: Job, detail: dict, sns: Any, logs: Any, sleep) -> dict:
    main = container(detail, job.container)
    exit_code = main.get("exitCode")
    ok = exit_code == 0
    stream = f"{job.stream_prefix}/{job.container}/{task_id(detail)}"
    summary, failures = read_summary(logs, job.log_group, stream, sleep)
    exit_text = f"exit {exit_code}" if isinstance(exit_code, int) else "no exit code"
    subject = f"Model delivery {config.stage}: {job.label} {'succeeded' if ok else 'FAILED'} ({exit_text})"
    what = {"seed": "Seeding", "sign": "Signing"}[job.label]
    lines = [
        f"{what} task {task_id(detail)} ({config.stage}) stopped: "
        + (
            f"container {job.container} exit code {exit_code}"
            if isinstance(exit_code, int)
            else f"container {job.container} has no exit code (it did not run to its end)"
        ),
        f"Stopped reason: {stop_description(detail)}",
    ]
    if main.get("reason"):
        lines.append(f"Container reason: {main['reason']}")
    lines.append(f"Summary: {summary}")
    lines += failures
    if job.label == "seed" and ok:
        lines.append("Next: the signing task signs what it staged and mirrors it; its result follows.")
    lines += [
        f"Log: group {job.log_group}, stream {stream}",
        f"Task: {detail['taskArn']}",
        'What to do: docs/runbook.md, "Seed results".',
    ]
    publish(sns, config.topic_arn, subject, "\n".join(lines))
    tasks, failed = JOB_METRICS[job.label]
    emit(config, {tasks: 1, failed: int(not ok)}, task=detail["taskArn"], exitCode=exit_code, summary=summary)
    return {
        "action": f"{job.label}-result",
        "taskArn": detail["taskArn"],
        "exitCode": exit_code,
        "ok": ok,
        "summary": summary,
    }


def read_summary(logs: Any, group: str, stream: str, sleep) -> tuple[str, list[str]]:
    """The seed's summary line and the FAILED lines after it, newest run of them in the stream. Never raises:
    the outcome is published even when the log cannot be read, with the reason instead."""
    problem = "not found in the log"
    for attempt in range(LOG_ATTEMPTS):
        if attempt:
            sleep(LOG_WAIT_SECONDS)
        try:
            lines = last_lines(logs, group, stream)
        except ClientError as err:
            error = err.response.get("Error", {})
            if error.get("Code") == "ResourceNotFoundException":
                problem = "no log stream: the container never started, or wrote nothing"
                continue
            return (
                f"unavailable (the log could not be read: {error.get('Code', 'error')}: {error.get('Message', err)})",
                [],
            )
        except BotoCoreError as err:
            return f"unavailable (the log could not be read: {err})", []
        for index in range(len(lines) - 1, -1, -1):
            if SUMMARY.match(lines[index]):
                failed = [line[:LINE_CHARS] for line in lines[index + 1 :] if line.startswith("FAILED ")]
                more = len(failed) - FAILED_LINES_SHOWN
                return lines[index][:LINE_CHARS], failed[:FAILED_LINES_SHOWN] + (
                    [f"... and {more} more FAILED lines in the log"] if more > 0 else []
                )
    return f"none ({problem}; the task may have run another command, or ended before its summary)", []


def last_lines(logs: Any, group: str, stream: str) -> list[str]:
    """Up to LOG_PAGES x LOG_PAGE of the newest lines of the stream, oldest first."""
    lines: list[str] = []
    request = {"logGroupName": group, "logStreamName": stream, "startFromHead": False, "limit": LOG_PAGE}
    for _ in range(LOG_PAGES):
        page = logs.get_log_events(**request)
        events = page.get("events", [])
        lines = [e.get("message", "").rstrip("\n") for e in events] + lines
        if any(SUMMARY.match(line) for line in lines) or not events:
            break
        request["nextToken"] = page["nextBackwardToken"]
    return lines


def publish(sns: Any, topic_arn: str, subject: str, message: str) -> None:
    # An SNS subject is ASCII without line breaks; a stage name could bring anything else.
    clean = "".join(ch if " " <= ch <= "~" else "?" for ch in subject)[:SUBJECT_CHARS]
    sns.publish(TopicArn=topic_arn, Subject=clean, Message=message)


# -- service tasks ----------------------------------------------------------------------------------------------


def service_task_stopped(config: Config, detail: dict, watch: Watch) -> dict:
    init = container(detail, watch.init_container)
    exit_code = init.get("exitCode")
    stop_code = detail.get("stopCode")
    if isinstance(exit_code, int):
        failed = exit_code != 0 and not (stop_code in OUTSIDE_STOPS and exit_code in STOP_SIGNAL_EXITS)
        what = f"init container {watch.init_container} exited {exit_code}"
    else:
        # The task failed before the init container could run (EFS mount refused, image pull failed, ...).
        failed = stop_code == "TaskFailedToStart"
        what = f"init container {watch.init_container} did not run"
    description = f"{what}; task stopped: {stop_description(detail)}" + (
        f"; container reason: {init['reason']}" if init.get("reason") else ""
    )
    print(("init failure: " if failed else "not an init failure: ") + f"task {detail['taskArn']}: {description}")
    emit(
        config,
        {"InitFailures": int(failed)},
        app=watch.app or None,
        task=detail["taskArn"],
        exitCode=exit_code,
        detail=description,
        logStream=f"service/{watch.init_container}/{task_id(detail)}",
    )
    return {
        "action": "init-failure" if failed else "not-an-init-failure",
        "taskArn": detail["taskArn"],
        "exitCode": exit_code,
    }


# -- metrics ----------------------------------------------------------------------------------------------------


def emit(config: Config, values: dict[str, int], app: str | None = None, **properties) -> None:
    """One CloudWatch EMF record on stdout (Lambda sends it to CloudWatch Logs, which extracts the metrics): by
    Stage, and with an app also by Stage and App (each app's alarm reads its own)."""
    dimensions = [["Stage", "App"], ["Stage"]] if app else [["Stage"]]
    record = {
        "_aws": {
            "Timestamp": int(time.time() * 1000),
            "CloudWatchMetrics": [
                {
                    "Namespace": config.namespace,
                    "Dimensions": dimensions,
                    "Metrics": [{"Name": name, "Unit": "Count"} for name in values],
                }
            ],
        },
        "Stage": config.stage,
        **({"App": app} if app else {}),
        **values,
        **properties,
    }
    print(json.dumps(record, sort_keys=True))


# Read once per execution environment (cold start); a broken environment is reported on every invocation.
try:
    _CONFIG: Config | None = load_config(os.environ)
    _CONFIG_ERROR: ConfigError | None = None
except ConfigError as _err:
    _CONFIG, _CONFIG_ERROR = None, _err

_clients: dict[str, Any] = {}


def _client(service: str) -> Any:
    if service not in _clients:
        _clients[service] = boto3.client(service)
    return _clients[service]


def handler(event: Any, context: Any) -> dict:
    if _CONFIG_ERROR is not None:
        raise _CONFIG_ERROR
    assert _CONFIG is not None
    return handle(_CONFIG, event, _client("sns"), _client("logs"))
