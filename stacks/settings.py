"""Deployment settings: one typed object built from cdk.json context, a named stage and `-c` overrides.

Precedence (last wins): the `defaults` under the `model-delivery` context key, then the chosen
stage's block (`-c stage=NAME`, default `dev`), then any `-c <setting>=<value>` on the command line.
Values given with `-c` arrive as strings and are parsed by the setting's type (lists are comma
separated, tags are JSON). Every problem raises SettingsError with one line naming the setting,
the bad value and what is allowed.
"""

from __future__ import annotations

import json
import math
import os
import posixpath
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from model_delivery.catalog import DEFAULT_CATALOG, Catalog, load_catalog
from model_delivery.contract import SCRATCH_PATH, STORE_PATH
from model_delivery.errors import ModelDeliveryError
from model_delivery.logs import LOG_RETENTION_DAYS
from model_delivery.monitoring import EMAIL, THRESHOLDS, AlarmThresholds
from model_delivery.seeding import seed_fingerprint
from model_delivery.signing import check_publisher_role_arns
from model_delivery.specs import check_pins
from model_delivery.tasks import EPHEMERAL_RANGE_GIB, FARGATE_DEFAULT_EPHEMERAL_GIB, fargate_size_problem
from stacks.app_image import parse_app_image
from stacks.errors import SettingsError

CONTEXT_KEY = "model-delivery"
DEFAULT_STAGE = "dev"

VPC_ID = re.compile(r"^vpc-[0-9a-f]{8}([0-9a-f]{9})?$")
ACCOUNT_ID = re.compile(r"^[0-9]{12}$")
REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-[0-9]+$")
IMAGE_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,254}$")
CERTIFICATE_ARN = re.compile(r"^arn:aws[a-z-]*:acm:[a-z0-9-]+:[0-9]{12}:certificate/[A-Za-z0-9-]{1,64}$")
CIDR = re.compile(r"^([0-9]{1,3}\.){3}[0-9]{1,3}/([0-9]|[12][0-9]|3[0-2])$")
HEALTH_PATH = re.compile(r"^/[A-Za-z0-9._~!$&'()*+,;=:@%/?-]{0,1023}$")  # ALB: 1-1024 characters
INGRESS = ("none", "internal", "public")
STOP_TIMEOUT_RANGE = (2, 120)  # seconds; Fargate's maximum stopTimeout is 120


@dataclass(frozen=True)
class Settings:
    """Everything the stacks read. Defaults here equal the `defaults` block in cdk.json."""

    stage: str = DEFAULT_STAGE
    account: str | None = None
    region: str | None = None
    delivery_mode: str = "s3"
    vpc_id: str = ""
    max_azs: int = 2
    nat_gateways: int = 1
    service_cpu: int = 1024
    service_memory_mib: int = 4096
    desired_count: int = 1
    min_capacity: int = 1
    max_capacity: int = 4
    target_cpu_percent: int = 60
    ephemeral_storage_gib: int = 30
    service_models: tuple[str, ...] = ()
    seed_models: tuple[str, ...] = ()
    seed_cpu: int = 2048
    seed_memory_mib: int = 8192
    seed_ephemeral_storage_gib: int = 50
    image_source: str = "asset"
    image_tag: str = ""
    ecr_max_image_count: int = 20
    removal_policy: str = "retain"
    termination_protection: bool = False
    log_retention_days: int = 30
    tags: Mapping[str, str] = field(default_factory=lambda: {"project": "model-delivery"})
    seed_on_deploy: bool = False
    start_service: bool = True
    # The app container (docs/infrastructure.md, "Serve your own app"): empty app_image = the demo app.
    app_image: str = ""
    app_command: tuple[str, ...] = ()
    app_port: int = 8080
    app_health_path: str = ""
    app_health_command: tuple[str, ...] = ()
    app_environment: Mapping[str, str] = field(default_factory=dict)
    app_layout: str = "flat"
    app_models_path: str = "/srv/models"
    app_writable_paths: tuple[str, ...] = ()
    app_stop_timeout_seconds: int = 30
    app_start_seconds: int = 60
    ingress: str = "none"
    certificate_arn: str = ""
    ingress_cidrs: tuple[str, ...] = ()
    # Monitoring (docs/runbook.md, "Alarms"): who gets the alarm topic's mail, and when the alarms fire.
    alarm_email: str = ""
    alarm_tasks_below_desired_minutes: int = AlarmThresholds.tasks_below_desired_minutes
    alarm_pull_seconds: int = AlarmThresholds.pull_seconds
    alarm_efs_io_limit_percent: int = AlarmThresholds.efs_io_limit_percent
    alarm_efs_throughput_percent: int = AlarmThresholds.efs_throughput_percent
    alarm_http_5xx_count: int = AlarmThresholds.http_5xx_count
    alarm_unhealthy_targets_minutes: int = AlarmThresholds.unhealthy_targets_minutes
    # Signed manifests (docs/runtime.md, "Signed manifests"): roles besides the seeding task that may sign
    # manifests and write or delete under models/ (operators who publish or prune by hand).
    publisher_role_arns: tuple[str, ...] = ()
    # Derived from the catalog (not settable): what gets seeded and its fingerprint.
    seeded_models: tuple[str, ...] = ()
    catalog_names: tuple[str, ...] = ()
    catalog_sha256: str = ""

    @property
    def uses_existing_vpc(self) -> bool:
        return bool(self.vpc_id)

    @property
    def served_models(self) -> tuple[str, ...]:
        """What the service loads, `NAME` or `NAME@VERSION` (pinned): the explicit list, or every seeded
        model. Pins go into the task definition, so a deploy is the model rollout."""
        return self.service_models or self.seeded_models

    @property
    def served_names(self) -> tuple[str, ...]:
        return tuple(spec.partition("@")[0] for spec in self.served_models)

    @property
    def pinned_models(self) -> tuple[str, ...]:
        return tuple(spec for spec in self.served_models if "@" in spec)

    @property
    def demo_app(self) -> bool:
        """No app_image: the app container is modelsync's own `serve` (a model listing)."""
        return not self.app_image

    @property
    def health_path(self) -> str:
        return self.app_health_path or "/readyz"  # the demo app: 200 only while the models verify

    @property
    def alarm_thresholds(self) -> AlarmThresholds:
        return AlarmThresholds(**{name: getattr(self, f"alarm_{name}") for name in THRESHOLDS})

    @property
    def seed_fingerprint(self) -> str:
        """Changes whenever the catalog file or the seed selection changes (drives seed_on_deploy); with
        image_source=ecr also when the image tag changes, since the image carries the catalog it seeds."""
        image = self.image_tag if self.image_source == "ecr" else ""
        return seed_fingerprint(self.catalog_sha256, self.seeded_models, image)


SETTABLE = tuple(
    f.name for f in fields(Settings) if f.name not in ("stage", "seeded_models", "catalog_names", "catalog_sha256")
)
_FIELD_TYPES = {f.name: f.type for f in fields(Settings)}


def load_settings(
    get_context: Callable[[str], Any], *, environ: Mapping[str, str] | None = None, catalog_path: Path = DEFAULT_CATALOG
) -> Settings:
    """Build and validate the settings from CDK context (`app.node.try_get_context`)."""
    environ = os.environ if environ is None else environ
    config = get_context(CONTEXT_KEY)
    if not isinstance(config, dict) or not isinstance(config.get("stages"), dict):
        raise SettingsError(
            f"cdk.json context needs a '{CONTEXT_KEY}' object with 'defaults' and 'stages'; "
            "restore it from the repository"
        )
    stages = config["stages"]
    stage = get_context("stage") or DEFAULT_STAGE
    if stage not in stages:
        raise SettingsError(
            f"setting 'stage' = {stage!r} is not allowed: use one of {', '.join(sorted(stages))} "
            f"(stages are defined under '{CONTEXT_KEY}.stages' in cdk.json)"
        )

    values: dict[str, Any] = {}
    for origin, block in (("defaults", config.get("defaults", {})), (f"stages.{stage}", stages[stage])):
        if not isinstance(block, dict):
            raise SettingsError(f"'{CONTEXT_KEY}.{origin}' in cdk.json must be an object of settings")
        for key, value in block.items():
            if key not in SETTABLE:
                raise SettingsError(
                    f"unknown setting {key!r} in '{CONTEXT_KEY}.{origin}': allowed are {', '.join(SETTABLE)}"
                )
            values[key] = _coerce(key, value, from_cli=False)
    for key in SETTABLE:
        override = get_context(key)
        if override is not None:
            values[key] = _coerce(key, override, from_cli=isinstance(override, str))

    values["account"] = values.get("account") or environ.get("CDK_DEFAULT_ACCOUNT") or None
    values["region"] = values.get("region") or environ.get("CDK_DEFAULT_REGION") or None
    settings = Settings(stage=stage, **values)
    _validate(settings)
    catalog = load_catalog(catalog_path)
    return _with_catalog(settings, catalog)


def _coerce(key: str, value: Any, *, from_cli: bool) -> Any:
    """Turn a cdk.json value or a `-c` string into the setting's type."""
    kind = _FIELD_TYPES[key]
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if from_cli and value.lower() in ("true", "false"):
            return value.lower() == "true"
        _fail(key, value, "true or false")
    if kind == "int":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if from_cli and re.fullmatch(r"-?[0-9]+", value.strip()):
            return int(value)
        _fail(key, value, "a whole number")
    if kind == "tuple[str, ...]":
        if from_cli:
            value = _cli_list(key, value)
        if isinstance(value, list) and all(isinstance(item, str) and item for item in value):
            return tuple(value)
        _fail(
            key,
            value,
            f"a list of {_LIST_ITEMS.get(key, 'strings')} (on the command line: comma separated, or a JSON list)",
        )
    if kind == "Mapping[str, str]":
        if from_cli:
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                _fail(key, value, 'a JSON object of strings, e.g. {"team":"ml"}')
        if isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            return dict(value)
        _fail(key, value, 'an object of string keys and string values, e.g. {"team":"ml"}')
    if kind in ("str", "str | None"):
        if isinstance(value, str):
            return value.strip()
        _fail(key, value, "a string")
    raise AssertionError(f"no parser for setting type {kind}")  # a new field without a parser is a bug


_LIST_ITEMS = {
    "service_models": "catalog model names, each optionally pinned as NAME@VERSION",
    "seed_models": "catalog model names",
    "app_command": "command words",
    "app_health_command": "command words",
    "app_writable_paths": "absolute paths",
    "ingress_cidrs": "IPv4 CIDR blocks",
    "publisher_role_arns": "IAM role ARNs",
}


def _cli_list(key: str, value: str) -> Any:
    """`-c key=a,b` or `-c 'key=["a", "b,c"]'` (a JSON list keeps commas inside items)."""
    if value.strip().startswith("["):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            _fail(key, value, 'a JSON list of strings, e.g. ["a", "b"]')
    return [item.strip() for item in value.split(",") if item.strip()]


def _fail(key: str, value: Any, allowed: str) -> None:
    raise SettingsError(f"setting {key!r} = {value!r} is not allowed: use {allowed}")


def _validate(s: Settings) -> None:
    """Checks that need no catalog. Ordered so the first message is about the first bad key."""
    if s.account is not None and not ACCOUNT_ID.match(s.account):
        _fail("account", s.account, "a 12-digit AWS account id (or leave empty to use CDK_DEFAULT_ACCOUNT)")
    if s.region is not None and not REGION.match(s.region):
        _fail("region", s.region, "an AWS region name such as eu-west-1 (or leave empty to use CDK_DEFAULT_REGION)")
    if s.delivery_mode not in ("s3", "efs"):
        _fail(
            "delivery_mode",
            s.delivery_mode,
            "'s3' (each task downloads its models) or 'efs' (tasks read the EFS mirror)",
        )
    if s.vpc_id:
        if not VPC_ID.match(s.vpc_id):
            _fail("vpc_id", s.vpc_id, "an existing VPC id like vpc-0123456789abcdef0, or empty for a new VPC")
        if not (s.account and s.region):
            raise SettingsError(
                f"setting 'vpc_id' = {s.vpc_id!r} needs an explicit account and region to look the VPC "
                "up: set 'account' and 'region' for the stage, or export CDK_DEFAULT_ACCOUNT and "
                "CDK_DEFAULT_REGION (the CDK CLI does this when it has credentials)"
            )
    if not 2 <= s.max_azs <= 6:
        _fail("max_azs", s.max_azs, "2 to 6 (EFS mount targets and the service span at least two AZs)")
    if not 1 <= s.nat_gateways <= s.max_azs:
        _fail(
            "nat_gateways", s.nat_gateways, f"1 to max_azs ({s.max_azs}): the seeding task and image pulls need egress"
        )
    _validate_fargate_size("service_cpu", "service_memory_mib", s.service_cpu, s.service_memory_mib)
    if not 1 <= s.max_capacity <= 100:
        _fail("max_capacity", s.max_capacity, "1 to 100")
    if not 1 <= s.min_capacity <= s.max_capacity:
        _fail("min_capacity", s.min_capacity, f"1 to max_capacity ({s.max_capacity})")
    if not s.min_capacity <= s.desired_count <= s.max_capacity:
        _fail("desired_count", s.desired_count, f"min_capacity..max_capacity ({s.min_capacity}..{s.max_capacity})")
    if not 10 <= s.target_cpu_percent <= 90:
        _fail("target_cpu_percent", s.target_cpu_percent, "10 to 90 (percent CPU the autoscaling keeps the service at)")
    for key in ("ephemeral_storage_gib", "seed_ephemeral_storage_gib"):
        gib = getattr(s, key)
        if gib != FARGATE_DEFAULT_EPHEMERAL_GIB and not EPHEMERAL_RANGE_GIB[0] <= gib <= EPHEMERAL_RANGE_GIB[1]:
            _fail(key, gib, f"20 (the Fargate default) or {EPHEMERAL_RANGE_GIB[0]} to {EPHEMERAL_RANGE_GIB[1]} GiB")
    _validate_fargate_size("seed_cpu", "seed_memory_mib", s.seed_cpu, s.seed_memory_mib)
    if s.image_source not in ("asset", "ecr"):
        _fail(
            "image_source",
            s.image_source,
            "'asset' (built from container/ at deploy) or 'ecr' (image_tag in the project's repository)",
        )
    if s.image_source == "ecr" and not IMAGE_TAG.match(s.image_tag):
        _fail("image_tag", s.image_tag, "an ECR tag ([A-Za-z0-9_][A-Za-z0-9._-]{0,127}) when image_source is 'ecr'")
    if s.image_source == "asset" and s.image_tag:
        _fail(
            "image_tag", s.image_tag, "an empty tag when image_source is 'asset' (set image_source=ecr to deploy a tag)"
        )
    if not 1 <= s.ecr_max_image_count <= 1000:
        _fail("ecr_max_image_count", s.ecr_max_image_count, "1 to 1000 images kept in the repository")
    if s.removal_policy not in ("retain", "destroy"):
        _fail("removal_policy", s.removal_policy, "'retain' (keep bucket, key and file system on delete) or 'destroy'")
    if s.log_retention_days not in LOG_RETENTION_DAYS:
        _fail(
            "log_retention_days",
            s.log_retention_days,
            f"a CloudWatch Logs retention: {', '.join(map(str, LOG_RETENTION_DAYS))}",
        )
    for key, value in s.tags.items():
        if not 1 <= len(key) <= 128 or key.lower().startswith("aws:") or len(value) > 256:
            _fail(
                "tags",
                {key: value},
                "keys of 1-128 characters not starting with 'aws:' and values up to 256 characters",
            )
    _validate_app(s)
    _validate_ingress(s)
    _validate_alarms(s)
    _validate_publishers(s)


def _validate_publishers(s: Settings) -> None:
    """IAM role ARNs (the library's rule), reported as this setting."""
    try:
        check_publisher_role_arns(s.publisher_role_arns, "'publisher_role_arns'")
    except ModelDeliveryError as exc:
        raise SettingsError(f"setting {exc}") from None


def _validate_app(s: Settings) -> None:
    parse_app_image(s.app_image)  # refuses what is not an image reference
    if not 1 <= s.app_port <= 65535:
        _fail("app_port", s.app_port, "a TCP port, 1-65535 (the port the app listens on inside the task)")
    if s.app_health_path and not HEALTH_PATH.match(s.app_health_path):
        _fail(
            "app_health_path",
            s.app_health_path,
            "an HTTP path starting with '/', e.g. /status (the load balancer's health check)",
        )
    if not s.demo_app and s.ingress != "none" and not s.app_health_path:
        raise SettingsError(
            "setting 'app_health_path' is required with app_image and an ingress: the HTTP path the "
            "load balancer checks on app_port, e.g. /status for MaskTerial's server"
        )
    if s.app_health_command and s.app_health_command[0] not in ("CMD", "CMD-SHELL"):
        _fail(
            "app_health_command",
            list(s.app_health_command),
            'an ECS health check command starting with "CMD" '
            '(exec form) or "CMD-SHELL", e.g. ["CMD-SHELL", "curl -fs http://localhost:8000/status || exit 1"]',
        )
    for key in s.app_environment:
        if not ENV_NAME.match(key) or key.startswith("MODELSYNC_"):
            _fail(
                "app_environment",
                {key: s.app_environment[key]},
                "variable names of letters, digits and '_' "
                "(not starting with a digit or MODELSYNC_, which modelsync's own containers use)",
            )
    reserved = {STORE_PATH: "the model store", SCRATCH_PATH: "the scratch /tmp every container gets"}
    _check_app_path("app_models_path", s.app_models_path, reserved)
    taken = {**reserved, s.app_models_path: "app_models_path"}
    for path in s.app_writable_paths:
        _check_app_path("app_writable_paths", path, taken)
        taken[path] = "another writable path"
    if not STOP_TIMEOUT_RANGE[0] <= s.app_stop_timeout_seconds <= STOP_TIMEOUT_RANGE[1]:
        _fail(
            "app_stop_timeout_seconds",
            s.app_stop_timeout_seconds,
            f"{STOP_TIMEOUT_RANGE[0]} to {STOP_TIMEOUT_RANGE[1]} seconds (Fargate's limit) between SIGTERM and SIGKILL",
        )
    if not 0 <= s.app_start_seconds <= 3600:
        _fail(
            "app_start_seconds",
            s.app_start_seconds,
            "0 to 3600 seconds the app may take to start before health checks count",
        )


def _check_app_path(key: str, path: str, taken: Mapping[str, str]) -> None:
    if not path.startswith("/") or posixpath.normpath(path) != path or path == "/" or "//" in path:
        _fail(key, path, "an absolute, normalized path other than / (e.g. /srv/models)")
    for other, what in taken.items():
        if path == other or path.startswith(other.rstrip("/") + "/") or other.startswith(path + "/"):
            _fail(key, path, f"a path that neither is nor contains nor lies inside {other} ({what})")


def _validate_ingress(s: Settings) -> None:
    if s.ingress not in INGRESS:
        _fail(
            "ingress",
            s.ingress,
            "'none' (no load balancer), 'internal' (an internal ALB in the private subnets) "
            "or 'public' (an internet-facing ALB, HTTPS only)",
        )
    if s.certificate_arn and not CERTIFICATE_ARN.match(s.certificate_arn):
        _fail("certificate_arn", s.certificate_arn, "an ACM certificate ARN, arn:aws:acm:REGION:ACCOUNT:certificate/ID")
    if s.ingress == "public" and not s.certificate_arn:
        raise SettingsError(
            "setting 'ingress' = 'public' needs 'certificate_arn': an internet-facing load balancer "
            "serves HTTPS only (HTTP redirects); request an ACM certificate for your domain, or use "
            "ingress 'internal'"
        )
    if s.ingress == "none" and (s.certificate_arn or s.ingress_cidrs):
        key = "certificate_arn" if s.certificate_arn else "ingress_cidrs"
        _fail(key, getattr(s, key), "empty when ingress is 'none' (there is no load balancer to use it)")
    for cidr in s.ingress_cidrs:
        if not CIDR.match(cidr) or any(int(octet) > 255 for octet in cidr.split("/")[0].split(".")):
            _fail("ingress_cidrs", cidr, "IPv4 CIDR blocks such as 10.0.0.0/8 allowed to reach the load balancer")
    if s.ingress != "none" and not s.region:
        raise SettingsError(
            f"setting 'ingress' = {s.ingress!r} needs a region at synth (load balancer access logs "
            "are delivered by the region's log service): set 'region' for the stage or export "
            "CDK_DEFAULT_REGION"
        )


def _validate_alarms(s: Settings) -> None:
    if s.alarm_email and not EMAIL.fullmatch(s.alarm_email):
        _fail(
            "alarm_email",
            s.alarm_email,
            "one email address such as ops@example.com (it gets the alarms and seed "
            "results, after confirming the subscription), or empty for no subscription",
        )
    for name, (low, high, what) in THRESHOLDS.items():
        key = f"alarm_{name}"
        if not low <= getattr(s, key) <= high:
            _fail(key, getattr(s, key), f"{low} to {high} ({what})")


def _validate_fargate_size(cpu_key: str, memory_key: str, cpu: int, memory: int) -> None:
    problem = fargate_size_problem(cpu, memory, cpu_key)
    if problem:
        key, value = (cpu_key, cpu) if problem.startswith("a Fargate CPU") else (memory_key, memory)
        _fail(key, value, f"{problem} (Fargate combinations)")


def _check_pins(specs: tuple[str, ...]) -> None:
    """`NAME` or `NAME@VERSION`, each name once: the library's rule, reported as this setting."""
    try:
        check_pins(specs, "'service_models'")
    except ModelDeliveryError as exc:
        raise SettingsError(f"setting {exc}") from None


def _with_catalog(s: Settings, catalog: Catalog) -> Settings:
    """Checks against the catalog: model names exist, the service only needs seeded models, sizes fit."""
    _check_pins(s.service_models)
    served_names = [spec.partition("@")[0] for spec in s.service_models]
    for key, names in (("seed_models", s.seed_models), ("service_models", served_names)):
        unknown = [name for name in names if name not in catalog.names]
        if unknown:
            _fail(key, ",".join(unknown), f"names from {catalog.path.name}: {', '.join(catalog.names)}")
    seeded = s.seed_models or catalog.enabled_names
    if not seeded:
        _fail("seed_models", "", f"at least one model: {catalog.path.name} enables none, so name them here")
    missing = [name for name in served_names if name not in seeded]
    if missing:
        _fail(
            "service_models",
            ",".join(missing),
            f"models that are seeded ({', '.join(seeded)}); add them to seed_models",
        )
    served = served_names or seeded
    if s.delivery_mode == "s3":
        # Pull writes a new version next to the old one before switching, so the volume holds it twice.
        need_gib = math.ceil(2 * sum(catalog.size_mb(name) for name in served) / 1024)
        if need_gib > s.ephemeral_storage_gib:
            _fail(
                "ephemeral_storage_gib",
                s.ephemeral_storage_gib,
                f"at least {need_gib} GiB in s3 mode: twice the selected models ({', '.join(served)}), "
                "by the size estimates in the catalog",
            )
    largest = max(catalog.size_mb(name) for name in seeded)
    # The seeder keeps an archive and its extracted tree on local disk at the same time.
    need_seed_gib = math.ceil(2 * largest / 1024)
    if need_seed_gib > s.seed_ephemeral_storage_gib:
        _fail(
            "seed_ephemeral_storage_gib",
            s.seed_ephemeral_storage_gib,
            f"at least {need_seed_gib} GiB: twice the largest seeded archive, by the catalog's size estimates",
        )
    return replace(s, seeded_models=tuple(seeded), catalog_names=tuple(catalog.names), catalog_sha256=catalog.sha256)
