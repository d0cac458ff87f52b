"""Seed runner: starts one seeding task (`modelsync seed`) on Fargate and says where its logs go; and, when a seeding
task ended with exit 0, the signing task (`modelsync sign`) that signs what it staged.

Contract (docs/contracts.md, "Seed runner Lambda"):
  environment  CLUSTER_ARN, TASK_DEFINITION_ARN, SUBNET_IDS, SECURITY_GROUP_IDS (comma lists),
               CONTAINER_NAME, LOG_GROUP_NAME, LOG_STREAM_PREFIX;
               optional CATALOG_NAMES (comma list): when set, `only` names outside it are refused;
               optional together: SIGN_TASK_DEFINITION_ARN, SIGN_CONTAINER_NAME, SIGN_LOG_GROUP_NAME,
               SIGN_LOG_STREAM_PREFIX (the signing task)
  event        {"only": ["NAME", ...]}   (optional; overrides MODELSYNC_SEED_ONLY for this run), or
               {"sign_after": "<seeding task ARN>"}   (the rule on a seeding task that ended with exit 0)
  returns      {"taskArn", "taskId", "logGroupName", "logStreamName"}
The signing task is started with startedBy `sign-after-<seeding task id>` and that id as its client token, so
`make seed` finds it and a repeated event starts no second one.

Only boto3 from the Lambda runtime is used, so the function ships as this one file.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

STARTED_BY = "seed-runner"
# EFS volumes on Fargate need platform 1.4.0 or later; pin it so LATEST never surprises us.
PLATFORM_VERSION = "1.4.0"
SEED_ONLY_ENV = "MODELSYNC_SEED_ONLY"
# Model / catalog entry names, as in docs/contracts.md ("Bucket layout").
MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
EVENT_KEYS = frozenset({"only"})
SIGN_AFTER = "sign_after"
SIGN_STARTED_BY = "sign-after-"  # + the seeding task's id (tools/seed.py looks the signing task up by it)
TASK_ARN = re.compile(r"^arn:aws[a-z-]*:ecs:[a-z0-9-]+:[0-9]{12}:task/[A-Za-z0-9_-]+/[0-9a-f]{32}$")
_SIGN_VARIABLES = ("SIGN_TASK_DEFINITION_ARN", "SIGN_CONTAINER_NAME", "SIGN_LOG_GROUP_NAME", "SIGN_LOG_STREAM_PREFIX")
CATALOG_NAMES_ENV = "CATALOG_NAMES"
CATALOG_NAMES_SHOWN = 5  # how many valid names a refusal lists


class ConfigError(Exception):
    """The function's environment is incomplete (a deployment problem, not a caller problem)."""


class InvalidSeedRequest(ValueError):
    """The event is malformed; the caller must fix it. tools/seed.py maps this to exit code 2."""


class SeedTaskNotStarted(RuntimeError):
    """ECS accepted the call but did not start the task (RunTask `failures`, or no task)."""


@dataclass(frozen=True)
class Config:
    cluster_arn: str
    task_definition_arn: str
    subnet_ids: tuple[str, ...]
    security_group_ids: tuple[str, ...]
    container_name: str
    log_group_name: str
    log_stream_prefix: str
    # The catalog's entry names; empty: no catalog check (only the name pattern).
    catalog_names: tuple[str, ...] = ()
    # The signing task: (task definition ARN, container, log group, stream prefix), or None.
    signing: tuple[str, str, str, str] | None = None

    def sign_step(self) -> Config:
        """The same network, the signing task instead of the seeding task."""
        if self.signing is None:
            raise ConfigError(
                "the signing task is not configured (SIGN_TASK_DEFINITION_ARN and its three companions): redeploy "
                "the service stack"
            )
        definition, container, group, prefix = self.signing
        return Config(self.cluster_arn, definition, self.subnet_ids, self.security_group_ids, container, group, prefix)


def _required(environ: Mapping[str, str], name: str) -> str:
    value = environ.get(name, "").strip()
    if not value:
        raise ConfigError(
            f"environment variable {name} is missing or empty: set it on the function "
            "(the service stack does this; redeploy it)"
        )
    return value


def _required_list(environ: Mapping[str, str], name: str) -> tuple[str, ...]:
    items = tuple(item.strip() for item in _required(environ, name).split(",") if item.strip())
    if not items:
        raise ConfigError(f"environment variable {name} lists no ids: give a comma-separated list")
    return items


def _optional_names(environ: Mapping[str, str], name: str) -> tuple[str, ...]:
    """A comma list of model names; unset or empty gives ()."""
    raw = environ.get(name, "")
    if not raw.strip():
        return ()
    names = tuple(dict.fromkeys(item.strip() for item in raw.split(",") if item.strip()))
    if not names:
        raise ConfigError(
            f"environment variable {name} lists no names: give a comma-separated list of catalog names, or unset it"
        )
    bad = [item for item in names if not MODEL_NAME.fullmatch(item)]
    if bad:
        raise ConfigError(
            f"environment variable {name} holds invalid model name(s) "
            f"{', '.join(map(repr, bad))}: fix the list (the service stack sets it; redeploy)"
        )
    return names


def _signing(environ: Mapping[str, str]) -> tuple[str, str, str, str] | None:
    values = [environ.get(name, "").strip() for name in _SIGN_VARIABLES]
    if not any(values):
        return None
    if not all(values):
        missing = [name for name, value in zip(_SIGN_VARIABLES, values, strict=True) if not value]
        raise ConfigError(
            f"environment variables {', '.join(_SIGN_VARIABLES)} go together, and {', '.join(missing)} is missing: "
            "set all four or none (redeploy the service stack)"
        )
    return values[0], values[1], values[2], values[3]


def load_config(environ: Mapping[str, str]) -> Config:
    return Config(
        cluster_arn=_required(environ, "CLUSTER_ARN"),
        task_definition_arn=_required(environ, "TASK_DEFINITION_ARN"),
        subnet_ids=_required_list(environ, "SUBNET_IDS"),
        security_group_ids=_required_list(environ, "SECURITY_GROUP_IDS"),
        container_name=_required(environ, "CONTAINER_NAME"),
        log_group_name=_required(environ, "LOG_GROUP_NAME"),
        log_stream_prefix=_required(environ, "LOG_STREAM_PREFIX"),
        catalog_names=_optional_names(environ, CATALOG_NAMES_ENV),
        signing=_signing(environ),
    )


def parse_only(event: Any, catalog_names: tuple[str, ...] = ()) -> list[str] | None:
    """The model names to seed, or None for the catalog's enabled entries.

    With `catalog_names`, a well-formed name outside it is refused here, before a task is started
    (the seeding task would refuse it too, but only after minutes of image pull and EFS mount).
    """
    if event is None:
        return None
    if not isinstance(event, dict):
        raise InvalidSeedRequest(
            f'event must be a JSON object such as {{"only": ["NAME"]}}, got {type(event).__name__}'
        )
    unknown = sorted(set(event) - EVENT_KEYS)
    if unknown:
        raise InvalidSeedRequest(
            f"unknown event key(s) {', '.join(map(repr, unknown))}: the only accepted key is 'only'"
        )
    only = event.get("only")
    if only is None:
        return None
    if not isinstance(only, list) or not all(isinstance(name, str) for name in only):
        raise InvalidSeedRequest('\'only\' must be a list of model names such as ["SEG_M2F_GrapheneL", "paddleocr"]')
    if not only:
        raise InvalidSeedRequest(
            "'only' is empty: name at least one model, or leave 'only' out to seed the catalog's enabled entries"
        )
    bad = [name for name in only if not MODEL_NAME.fullmatch(name)]
    if bad:
        raise InvalidSeedRequest(
            f"invalid model name(s) {', '.join(map(repr, bad))}: names are 1-128 characters of "
            "letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    if catalog_names:
        _refuse_names_outside(only, catalog_names)
    return list(dict.fromkeys(only))  # drop repeats, keep the caller's order


def _refuse_names_outside(only: list[str], catalog_names: tuple[str, ...]) -> None:
    unknown = [name for name in dict.fromkeys(only) if name not in catalog_names]
    if not unknown:
        return
    by_lower = {known.lower(): known for known in catalog_names}  # a case slip is a likely typo
    described = []
    for name in unknown:
        close = difflib.get_close_matches(name.lower(), by_lower, n=1)
        described.append(f"{name!r} (did you mean {by_lower[close[0]]!r}?)" if close else repr(name))
    shown = ", ".join(catalog_names[:CATALOG_NAMES_SHOWN])
    more = f", ... ({len(catalog_names)} in all)" if len(catalog_names) > CATALOG_NAMES_SHOWN else ""
    raise InvalidSeedRequest(f"not in the catalog: {', '.join(described)}; catalog names include {shown}{more}")


def sign_after(event: Any) -> str | None:
    """The seeding task's id from {"sign_after": ARN}, or None for any other event."""
    if not (isinstance(event, dict) and SIGN_AFTER in event):
        return None
    arn = event[SIGN_AFTER]
    if set(event) != {SIGN_AFTER} or not isinstance(arn, str) or not TASK_ARN.match(arn):
        raise InvalidSeedRequest(
            f'a sign event is {{"{SIGN_AFTER}": "<seeding task ARN>"}} and nothing else: the rule sends it when a '
            "seeding task ends with exit 0"
        )
    return arn.rsplit("/", 1)[-1]


def run_task_request(
    config: Config,
    only: list[str] | None,
    client_token: str | None = None,
    started_by: str = STARTED_BY,
) -> dict[str, Any]:
    request: dict[str, Any] = {
        "cluster": config.cluster_arn,
        "taskDefinition": config.task_definition_arn,
        "launchType": "FARGATE",
        "platformVersion": PLATFORM_VERSION,
        "count": 1,
        "networkConfiguration": {
            "awsvpcConfiguration": {
                "subnets": list(config.subnet_ids),
                "securityGroups": list(config.security_group_ids),
                "assignPublicIp": "DISABLED",
            }
        },
        "startedBy": started_by,
        "propagateTags": "TASK_DEFINITION",
    }
    if client_token:
        # The invocation's request id: a retried invocation cannot start a second task.
        request["clientToken"] = client_token
    if only is not None:
        request["overrides"] = {
            "containerOverrides": [
                {
                    "name": config.container_name,
                    "environment": [{"name": SEED_ONLY_ENV, "value": ",".join(only)}],
                }
            ]
        }
    return request


def _describe_failures(failures: list[dict[str, Any]]) -> str:
    parts = []
    for failure in failures:
        text = f"{failure.get('arn', 'task')}: {failure.get('reason', 'unknown reason')}"
        if failure.get("detail"):
            text += f" ({failure['detail']})"
        parts.append(text)
    return "; ".join(parts)


def start_seed_task(
    config: Config, ecs: Any, only: list[str] | None, client_token: str | None = None, started_by: str = STARTED_BY
) -> dict[str, str]:
    """Start the task of `config` (the seeding task, or the signing task: Config.sign_step) and return the
    contract's dict."""
    try:
        response = ecs.run_task(**run_task_request(config, only, client_token, started_by))
    except ClientError as err:
        error = err.response.get("Error", {})
        raise SeedTaskNotStarted(
            f"RunTask was refused: {error.get('Code', 'error')}: {error.get('Message', err)}"
        ) from None
    except BotoCoreError as err:
        raise SeedTaskNotStarted(f"RunTask could not be called: {err}") from None

    failures = response.get("failures") or []
    if failures:
        raise SeedTaskNotStarted(f"RunTask did not start the seeding task: {_describe_failures(failures)}")
    tasks = response.get("tasks") or []
    if not tasks:
        raise SeedTaskNotStarted("RunTask returned no task and no failure: check the cluster's capacity")

    task_arn = tasks[0]["taskArn"]
    task_id = task_arn.rsplit("/", 1)[-1]
    return {
        "taskArn": task_arn,
        "taskId": task_id,
        "logGroupName": config.log_group_name,
        # awslogs driver naming: <prefix>/<container name>/<task id>
        "logStreamName": f"{config.log_stream_prefix}/{config.container_name}/{task_id}",
    }


# Read once per execution environment (cold start). A broken environment is reported on every
# invocation with the variable's name instead of as an opaque init failure.
try:
    _CONFIG: Config | None = load_config(os.environ)
    _CONFIG_ERROR: ConfigError | None = None
except ConfigError as _err:
    _CONFIG, _CONFIG_ERROR = None, _err

_ecs_client: Any = None


def _ecs() -> Any:
    global _ecs_client
    if _ecs_client is None:
        _ecs_client = boto3.client("ecs")
    return _ecs_client


def handler(event: Any, context: Any) -> dict[str, str]:
    if _CONFIG_ERROR is not None:
        raise _CONFIG_ERROR
    assert _CONFIG is not None
    seed_task_id = sign_after(event)
    if seed_task_id is not None:
        result = start_seed_task(
            _CONFIG.sign_step(), _ecs(), None, f"sign-{seed_task_id}", f"{SIGN_STARTED_BY}{seed_task_id}"
        )
        print(f"started signing task {result['taskArn']} after seeding task {seed_task_id}")
        return result
    only = parse_only(event, _CONFIG.catalog_names)
    result = start_seed_task(_CONFIG, _ecs(), only, getattr(context, "aws_request_id", None))
    print(f"started seeding task {result['taskArn']} only={only or 'catalog defaults'}")
    return result
