"""The settings, one typed section per concern. Each field says what it does, what it allows and which rule checks
it; a rule the construct library defines is called from here with the setting's name, never written again.

In cdk.json the stage-level settings are flat keys (`vpc_id`, `seed_models`, `alarm_email`, ...) and the apps are
one object, `apps`: {NAME: {their settings}}. docs/settings.md is generated from these declarations.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import aws_cdk as cdk

from model_delivery.alarm_topic import check_email
from model_delivery.delivery import TASK_PATHS, check_task_path
from model_delivery.logs import LOG_RETENTION_DAYS, check_retention
from model_delivery.modes import DEFAULT_WAIT_SECONDS, MAX_WAIT_SECONDS, MODES, delivery_mode, start_check_environment
from model_delivery.signing import check_publisher_role_arns
from model_delivery.tasks import (
    EPHEMERAL_RANGE_GIB,
    FARGATE_MEMORY,
    STOP_TIMEOUT_RANGE,
    check_ephemeral_storage,
    check_fargate_size,
    check_stop_timeout,
)
from model_delivery.thresholds import RANGES, AlarmThresholds, MirrorAlarmThresholds, check_threshold
from stacks.app_image import parse_app_image
from stacks.errors import SettingsError
from stacks.settings.schema import Section, derived, fail, setting, where

ACCOUNT_ID = re.compile(r"^[0-9]{12}$")
REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-[0-9]+$")
VPC_ID = re.compile(r"^vpc-[0-9a-f]{8}([0-9a-f]{9})?$")
IMAGE_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,254}$")
CERTIFICATE_ARN = re.compile(
    r"^arn:aws[a-z-]*:acm:(?P<region>[a-z0-9-]+):(?P<account>[0-9]{12}):certificate/[A-Za-z0-9-]{1,64}$"
)
SECRET_ARN = re.compile(
    r"^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:[A-Za-z0-9/_+=.@-]+-[A-Za-z0-9]{6}$"
)
CIDR = re.compile(r"^([0-9]{1,3}\.){3}[0-9]{1,3}/([0-9]|[12][0-9]|3[0-2])$")
HEALTH_PATH = re.compile(r"^/[A-Za-z0-9._~!$&'()*+,;=:@%/?-]{0,1023}$")  # ALB: 1-1024 characters
INGRESS = {
    "none": "no load balancer",
    "internal": "an internal ALB in the private subnets",
    "public": "an internet-facing ALB, HTTPS only",
}
APP_NAME = re.compile(r"^[a-z](?:[a-z0-9-]{0,18}[a-z0-9])?$")  # DNS-safe and short: it is in resource names
DEMO_APP = "demo"  # the app a stage without `apps` runs: modelsync's own `serve`


def _pattern(pattern: re.Pattern, allowed: str, empty_ok: bool = True):
    def check(value: str, at: str) -> None:
        if (value or not empty_ok) and not pattern.match(value):
            fail(at, value, allowed)

    return check


def _between(low: int, high: int, what: str):
    def check(value: int, at: str) -> None:
        if not low <= value <= high:
            fail(at, value, f"{low} to {high} ({what})")

    return check


def _one_of(choices: Mapping[str, str]):
    def check(value: str, at: str) -> None:
        if value not in choices:
            fail(at, value, " or ".join(f"'{k}' ({v})" for k, v in choices.items()))

    return check


def _threshold(name: str):
    return lambda value, at: check_threshold(name, value, at)


def _tags(value: Mapping[str, str], at: str) -> None:
    for key, text in value.items():
        if not 1 <= len(key) <= 128 or key.lower().startswith("aws:") or len(text) > 256:
            fail(at, {key: text}, "keys of 1-128 characters not starting with 'aws:' and values up to 256 characters")


def _ephemeral(value: int, at: str) -> None:
    check_ephemeral_storage(at, value)


FARGATE_CPU = ", ".join(map(str, FARGATE_MEMORY))
EPHEMERAL = f"20 (the Fargate default) or {EPHEMERAL_RANGE_GIB[0]}-{EPHEMERAL_RANGE_GIB[1]}"
RETENTIONS = ", ".join(map(str, LOG_RETENTION_DAYS))


@dataclass(frozen=True)
class StageSettings(Section):
    section_title = "Stage"
    section_doc = "Where the stage deploys and what every stack of it shares."

    account: str = setting(
        "",
        "Target account. Empty: `CDK_DEFAULT_ACCOUNT` (set by the CLI when it has credentials).",
        "a 12-digit account id, or empty",
        check=_pattern(ACCOUNT_ID, "a 12-digit AWS account id (or leave empty to use CDK_DEFAULT_ACCOUNT)"),
    )
    region: str = setting(
        "",
        "Target region. Empty: `CDK_DEFAULT_REGION`. Set it for every stage you deploy: cross-stack references "
        "are resolved in the region fixed at synth.",
        "a region name such as eu-west-1, or empty",
        check=_pattern(REGION, "an AWS region name such as eu-west-1 (or leave empty to use CDK_DEFAULT_REGION)"),
    )
    tags: Mapping[str, str] = setting(
        {"project": "model-delivery"},
        "Tags on every resource; `stage` is added automatically.",
        "string keys (1-128, not `aws:`) and values (up to 256)",
        check=_tags,
    )
    termination_protection: bool = setting(False, "Termination protection of the storage and service stacks.", "bool")
    removal_policy: str = setting(
        "retain",
        "What deleting a stack does to the keys, buckets, file system and repository (`retain`: kept, except "
        "after a failed first create). `destroy` still fails on a non-empty bucket or repository.",
        "`retain`, `destroy`",
        check=_one_of({"retain": "keep bucket, key and file system on delete", "destroy": "delete them"}),
    )
    log_retention_days: int = setting(
        30,
        "Retention of every log group the app creates, and the access-log bucket's expiry.",
        f"a CloudWatch Logs retention ({RETENTIONS})",
        check=lambda value, at: check_retention(value, at),
    )
    lambda_reserved_concurrency: bool = setting(
        False,
        "Reserve concurrency for the seed runner (1) and the task notifier (5). Off by default: AWS lets you "
        "reserve only the account's unreserved concurrency minus 100, and new accounts often have 10 in all, "
        "where any reservation fails the deploy (`make preflight` checks the quota).",
        "bool",
    )
    start_service: bool = setting(
        True,
        "`false` deploys every app's service with no tasks (autoscaling may go to zero): for the first deploy, "
        "before anything is seeded.",
        "bool",
    )
    name: str = derived("dev")  # the stage's name (`-c stage=NAME`)

    @property
    def env_account(self) -> str | None:
        return self.account or None

    @property
    def env_region(self) -> str | None:
        return self.region or None

    @property
    def log_group_prefix(self) -> str:
        """Every log group of the stage is named under it (the keys' policies allow CloudWatch Logs only there)."""
        return f"/model-delivery/{self.name}"

    @property
    def stateful_removal_policy(self) -> cdk.RemovalPolicy:
        """What deleting a stack does to the stateful resources (keys, buckets, file system, repository).

        "retain" keeps them on a stack delete and on a replacement, but deletes them when the stack's first
        create fails (DeletionPolicy RetainExceptOnCreate): a failed first deploy leaves no orphaned bucket,
        key or file system behind that the next attempt would have to clean up by hand."""
        if self.removal_policy == "retain":
            return cdk.RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE
        return cdk.RemovalPolicy.DESTROY


@dataclass(frozen=True)
class NetworkSettings(Section):
    section_title = "Network"
    section_doc = "The VPC the tasks, mount targets and load balancers live in."

    vpc_id: str = setting(
        "",
        "Use an existing VPC instead of creating one. It needs private subnets with egress (NAT) in at least two "
        "AZs and an S3 gateway endpoint on their route tables, and an explicit account and region for the lookup.",
        "a `vpc-` id, or empty for a new VPC",
        check=_pattern(VPC_ID, "an existing VPC id like vpc-0123456789abcdef0, or empty for a new VPC"),
    )
    max_azs: int = setting(
        2,
        "AZs of a new VPC. On a deployed stage it can grow (new subnets, a mount target and the services' "
        "subnets follow) but not shrink: a subnet with mount targets and tasks in it cannot be deleted.",
        "2-6",
        check=_between(2, 6, "EFS mount targets and the services span at least two AZs"),
    )
    nat_gateways: int = setting(1, "NAT gateways of a new VPC (seeding and image pulls need egress).", "1..max_azs")

    def check_together(self, prefix: str) -> None:
        if not 1 <= self.nat_gateways <= self.max_azs:
            fail(
                where(prefix, "nat_gateways"),
                self.nat_gateways,
                f"1 to max_azs ({self.max_azs}): the seeding task and image pulls need egress",
            )


@dataclass(frozen=True)
class StoreSettings(Section):
    section_title = "Store"
    section_doc = "The models bucket, its keys and the EFS mirror (the storage stack)."

    publisher_role_arns: tuple[str, ...] = setting(
        (),
        "Roles besides the seeding task role that may sign manifests and write or delete under `models/` "
        "(operators who publish or prune by hand); they still need an IAM policy (the store's ModelsWriteAccess).",
        "IAM role ARNs (no wildcards)",
        check=lambda value, at: check_publisher_role_arns(value, at),
        items="IAM role ARNs",
    )


@dataclass(frozen=True)
class ImageSettings(Section):
    section_title = "Images"
    section_doc = "Where modelsync's image (init containers, seeding, the demo app) comes from."

    image_source: str = setting(
        "asset",
        "`asset`: built from `container/` at deploy (the seeding one with `WITH_PADDLEOCR=1`); `ecr`: `image_tag` "
        "of the project's repository for every role.",
        "`asset`, `ecr`",
        check=_one_of({"asset": "built from container/ at deploy", "ecr": "image_tag in the project's repository"}),
    )
    image_tag: str = setting(
        "",
        "The tag to deploy with `ecr` (build it with `WITH_PADDLEOCR=1`: one image serves every role).",
        "an ECR tag; required with `ecr`, empty with `asset`",
    )
    ecr_max_image_count: int = setting(
        20, "Lifecycle rule of the project repository.", "1-1000", check=_between(1, 1000, "images kept")
    )

    def check_together(self, prefix: str) -> None:
        if self.image_source == "ecr" and not IMAGE_TAG.match(self.image_tag):
            fail(
                where(prefix, "image_tag"),
                self.image_tag,
                "an ECR tag ([A-Za-z0-9_][A-Za-z0-9._-]{0,127}) when image_source is 'ecr'",
            )
        if self.image_source == "asset" and self.image_tag:
            fail(
                where(prefix, "image_tag"),
                self.image_tag,
                "an empty tag when image_source is 'asset' (set image_source=ecr to deploy a tag)",
            )


@dataclass(frozen=True)
class SeedingSettings(Section):
    section_title = "Seeding"
    section_doc = "The one seeding task of the stage: what it publishes to the bucket and the mirror."

    seed_models: tuple[str, ...] = setting(
        (),
        "Models the seeding task publishes besides every app's models. When neither names a model: the "
        "catalog's `enabled` entries.",
        "catalog names",
        items="catalog model names",
    )
    seed_cpu: int = setting(2048, "Seeding task CPU (PaddleOCR's prewarm loads the pipeline).", "Fargate CPU units")
    seed_memory_mib: int = setting(8192, "Seeding task memory.", "a Fargate memory size for seed_cpu")
    seed_ephemeral_storage_gib: int = setting(
        50,
        "Seeding task storage: an archive and its extracted tree sit on disk together, plus the image.",
        f"{EPHEMERAL}; at least twice the largest seeded archive",
        check=_ephemeral,
    )
    seed_on_deploy: bool = setting(
        False,
        "Start the seeder (without waiting) during a deploy that changed the catalog or what is seeded.",
        "bool",
    )

    def check_together(self, prefix: str) -> None:
        check_fargate_size(
            where(prefix, "seed_cpu"), where(prefix, "seed_memory_mib"), self.seed_cpu, self.seed_memory_mib
        )


@dataclass(frozen=True)
class MonitoringSettings(Section):
    section_title = "Monitoring"
    section_doc = (
        "The stage's alarm topic and the alarms on what the apps share. Each app's alarms: `apps.NAME.alarms`."
    )

    alarm_email: str = setting(
        "",
        "Subscribes the address to the alarm topic (`AlarmTopicArn`): every alarm and every seed result, after "
        "confirming the subscription.",
        "one email address, or empty",
        check=lambda value, at: check_email(value, at) if value else None,
    )
    alarm_efs_io_limit_percent: int = setting(
        MirrorAlarmThresholds.io_limit_percent,
        "`EfsIoLimit` (when an app uses efs): percent of the EFS I/O limit for 5 minutes.",
        "1-100",
        check=_threshold("io_limit_percent"),
    )
    alarm_efs_throughput_percent: int = setting(
        MirrorAlarmThresholds.throughput_percent,
        "`EfsThroughputLimit` (when an app uses efs): percent of the permitted EFS throughput for 5 minutes.",
        "1-100",
        check=_threshold("throughput_percent"),
    )

    @property
    def mirror_thresholds(self) -> MirrorAlarmThresholds:
        return MirrorAlarmThresholds(self.alarm_efs_io_limit_percent, self.alarm_efs_throughput_percent)


# GitHub's rules for an owner (user or organization) and a repository name; environment names kept to characters
# that need no escaping in an IAM condition value or a shell (no '*' or '?', which StringLike would treat as wildcards).
GITHUB_REPOSITORY = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}$")
GITHUB_ENVIRONMENT = re.compile(r"^[A-Za-z0-9._-]{1,255}$")
GITHUB_OIDC_PROVIDER_ARN = re.compile(
    r"^arn:aws[a-z-]*:iam::(?P<account>[0-9]{12}):oidc-provider/token\.actions\.githubusercontent\.com$"
)


@dataclass(frozen=True)
class DeployAccessSettings(Section):
    section_title = "Deploy access"
    section_doc = (
        "The optional stack `ModelDelivery-<stage>-DeployAccess`: GitHub's OIDC provider and the two roles "
        "`.github/workflows/deploy.yml` assumes, a deploy role for one GitHub environment and a read-only diff role "
        "for pull requests (docs/ci-deploy.md). Deploy it once with `make deploy-access`; `cdk deploy --all`, "
        "`make deploy` and `make up` never select it."
    )

    deploy_access: bool = setting(
        False,
        "Add the deploy-access stack to the app (in its own nested assembly, outside `--all`).",
        "bool",
    )
    github_repository: str = setting(
        "",
        "The repository whose workflows may assume the roles, as GitHub spells it (the token's `sub` is compared "
        "exactly, case included). Required with `deploy_access`.",
        "`OWNER/NAME`",
        check=_pattern(GITHUB_REPOSITORY, "OWNER/NAME of a GitHub repository, e.g. my-org/model-delivery"),
    )
    github_environment: str = setting(
        "",
        "The GitHub environment whose jobs may assume the deploy role. Empty: the stage's name (deploy.yml runs "
        "its deploy job in the environment named after the stage).",
        "a GitHub environment name (letters, digits, `.`, `_`, `-`), or empty",
        check=_pattern(GITHUB_ENVIRONMENT, "a GitHub environment name of letters, digits, '.', '_' or '-', or empty"),
    )
    github_oidc_provider_arn: str = setting(
        "",
        "Empty: the stack creates the account's provider for `token.actions.githubusercontent.com`. An account "
        "holds one provider per URL: when it has one already (`aws iam list-open-id-connect-providers`), give its "
        "ARN and the roles trust that one.",
        "an IAM OIDC provider ARN for token.actions.githubusercontent.com, or empty",
        check=_pattern(
            GITHUB_OIDC_PROVIDER_ARN,
            "the ARN of the account's OIDC provider for GitHub, "
            "arn:aws:iam::ACCOUNT:oidc-provider/token.actions.githubusercontent.com, or empty to create it",
        ),
    )

    def check_together(self, prefix: str) -> None:
        if self.deploy_access and not self.github_repository:
            raise SettingsError(
                f"{where(prefix, 'github_repository')} is required with deploy_access: true: the GitHub repository "
                "(OWNER/NAME) whose workflows may deploy this stage, e.g. my-org/model-delivery"
            )

    def environment(self, stage: str) -> str:
        """The GitHub environment the deploy role trusts."""
        return self.github_environment or stage

    @property
    def provider_account(self) -> str | None:
        found = GITHUB_OIDC_PROVIDER_ARN.match(self.github_oidc_provider_arn)
        return found["account"] if found else None


def _range_text(name: str) -> str:
    low, high, _what = RANGES[name]
    return f"{low}-{high}"


@dataclass(frozen=True)
class AppAlarmSettings(Section):
    section_title = "App alarms"
    section_doc = "When one app's alarms fire (`apps.NAME.alarms.KEY`)."

    tasks_below_desired_minutes: int = setting(
        AlarmThresholds.tasks_below_desired_minutes,
        "Minutes the service may run fewer tasks than desired before `TasksBelowDesired` fires.",
        _range_text("tasks_below_desired_minutes"),
        check=_threshold("tasks_below_desired_minutes"),
    )
    pull_seconds: int = setting(
        AlarmThresholds.pull_seconds,
        "`ModelPullSlow` (s3 mode): a task start's model pull that takes longer.",
        _range_text("pull_seconds"),
        check=_threshold("pull_seconds"),
    )
    http_5xx_count: int = setting(
        AlarmThresholds.http_5xx_count,
        "`LoadBalancer5xx` (with an ingress): 5xx responses from the app and the load balancer in 5 minutes.",
        _range_text("http_5xx_count"),
        check=_threshold("http_5xx_count"),
    )
    unhealthy_targets_minutes: int = setting(
        AlarmThresholds.unhealthy_targets_minutes,
        "`UnhealthyTargets` (with an ingress): minutes a target may fail its health check.",
        _range_text("unhealthy_targets_minutes"),
        check=_threshold("unhealthy_targets_minutes"),
    )

    @property
    def thresholds(self) -> AlarmThresholds:
        return AlarmThresholds(
            self.tasks_below_desired_minutes, self.pull_seconds, self.http_5xx_count, self.unhealthy_targets_minutes
        )


def _image(value: str, at: str) -> None:
    parse_app_image(value, at)


def _health_command(value: tuple[str, ...], at: str) -> None:
    if value and value[0] not in ("CMD", "CMD-SHELL"):
        fail(
            at,
            list(value),
            'an ECS health check command starting with "CMD" (exec form) or "CMD-SHELL", e.g. '
            '["CMD-SHELL", "curl -fs http://localhost:8000/status || exit 1"]',
        )


def _environment(value: Mapping[str, str], at: str) -> None:
    for key in value:
        if not ENV_NAME.match(key) or key.startswith("MODELSYNC_"):
            fail(
                at,
                {key: value[key]},
                "variable names of letters, digits and '_' (not starting with a digit or MODELSYNC_, which "
                "modelsync's own containers use)",
            )


def _cidrs(value: tuple[str, ...], at: str) -> None:
    for cidr in value:
        if not CIDR.match(cidr) or any(int(octet) > 255 for octet in cidr.split("/")[0].split(".")):
            fail(at, cidr, "IPv4 CIDR blocks such as 10.0.0.0/8 allowed to reach the load balancer")


@dataclass(frozen=True)
class AppSettings(Section):
    section_title = "Apps"
    section_doc = (
        "One block per app under `apps`, keyed by the app's name (DNS-safe, at most 20 characters: lower-case "
        "letters, digits, '-'). A stage without `apps` runs the demo app (`apps.demo` with these defaults: "
        "modelsync's own `serve`). Each app gets its own service, task definition, security group, autoscaling, "
        "log group, alarms and, with an ingress, load balancer."
    )

    image: str = setting(
        "",
        "The app container's image; empty runs the demo `modelsync serve`. Never needs modelsync inside. An image in "
        "another ECR repository: the execution role may pull exactly that repository.",
        "empty; `REPO:TAG` or `REPO@sha256:DIGEST` from any registry; a bare tag of the project's repository",
        check=_image,
    )
    repository_credentials: str = setting(
        "",
        "For an image in a private registry (not ECR): the Secrets Manager secret with its `username` and "
        "`password`; the execution role may read exactly that secret (a secret under your own KMS key also "
        "needs that key's policy to let the role decrypt).",
        "a complete secret ARN (with its 6-character suffix), or empty",
        check=_pattern(
            SECRET_ARN,
            "a complete Secrets Manager secret ARN, arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME-XXXXXX, or empty",
        ),
    )
    command: tuple[str, ...] = setting((), "The app's command; empty: the image's own `CMD`.", "list of strings")
    port: int = setting(
        8080,
        "The port the app listens on: the target group's, and the only port its tasks accept (from its load balancer).",
        "1-65535",
        check=_between(1, 65535, "the port the app listens on inside the task"),
    )
    health_path: str = setting(
        "",
        "The load balancer's health check; required with `image` and an ingress. Demo app: `/readyz`.",
        "an HTTP path",
        check=_pattern(HEALTH_PATH, "an HTTP path starting with '/', e.g. /status (the load balancer's health check)"),
    )
    health_command: tuple[str, ...] = setting(
        (),
        "A container health check run inside the app image (use a tool it has). Demo app: `modelsync healthcheck`.",
        'an ECS health check command (`["CMD", ...]` or `["CMD-SHELL", "..."]`)',
        check=_health_command,
        items="command words",
    )
    environment: Mapping[str, str] = setting(
        {},
        "Extra environment of the app container.",
        "string map; not `MODELSYNC_*`, not a variable the layout sets",
        check=_environment,
    )
    writable_paths: tuple[str, ...] = setting(
        (),
        "More writable task-local directories in the app container (its root file system is read-only; `/tmp` is "
        "always writable).",
        "absolute paths",
        items="absolute paths",
    )
    layout: str = setting(
        "flat",
        "How the init container arranges the models in the app's view; every model must be placeable (checked "
        "at synth, and the rules go into the task definition).",
        "a layout of `container/modelsync/layouts.yaml`: `flat`, `maskterial`, `paddlex`",
    )
    view_path: str = setting(
        "/srv/models",
        "Where the app container mounts its view (read-only; writable for `paddlex`).",
        f"an absolute path, not in {', '.join(TASK_PATHS)}",
        check=lambda value, at: check_task_path(value, at),
    )
    models: tuple[str, ...] = setting(
        (),
        "Models the app loads; `NAME@VERSION` pins a version (the pin goes into the task definition, so a deploy is "
        "the rollout and the circuit breaker rolls it back). Every app's models are seeded. Empty: every seeded "
        "model, following `LATEST`.",
        "catalog names, each optionally `@VERSION`",
        items="catalog model names, each optionally pinned as NAME@VERSION",
    )
    delivery_mode: str = setting(
        "s3",
        "How the app's tasks get their models: "
        + "; ".join(f"`{name}`: {mode.summary}" for name, mode in MODES.items())
        + " (docs/infrastructure.md, Delivery modes).",
        " or ".join(f"`{name}`" for name in MODES),
        check=lambda value, at: delivery_mode(value, at),
    )
    verify_every_byte: bool = setting(
        False,
        "The init container hashes every byte of the served versions at each task start instead of checking their "
        "sizes against the signed manifest (modes that mount a store: "
        + ", ".join(f"`{name}`" for name, mode in MODES.items() if mode.verifies)
        + "). Slower starts, and every byte is read.",
        "bool",
    )
    files_wait_seconds: int = setting(
        DEFAULT_WAIT_SECONDS,
        "How long the init container waits for a version's files that the store does not show yet ("
        + ", ".join(f"`{name}`" for name, mode in MODES.items() if mode.late_files)
        + ": S3 Files shows new objects asynchronously), before the task fails with one line.",
        f"0-{MAX_WAIT_SECONDS}",
    )
    cpu: int = setting(1024, "Task CPU.", f"Fargate CPU units ({FARGATE_CPU})")
    memory_mib: int = setting(4096, "Task memory.", "a Fargate memory size for cpu")
    ephemeral_storage_gib: int = setting(
        30,
        "Task storage. In s3 mode it holds the served models twice (a new version lands beside the old one before "
        "the switch), by the catalog's size estimates, plus the image.",
        EPHEMERAL,
        check=_ephemeral,
    )
    desired_count: int = setting(1, "Initial task count.", "min_capacity..max_capacity")
    min_capacity: int = setting(1, "Autoscaling lower bound.", "1..max_capacity")
    max_capacity: int = setting(4, "Autoscaling upper bound.", "1-100", check=_between(1, 100, "tasks"))
    target_cpu_percent: int = setting(
        60, "CPU target tracking value.", "10-90", check=_between(10, 90, "percent CPU the autoscaling keeps")
    )
    stop_timeout_seconds: int = setting(
        30,
        "Time between SIGTERM and SIGKILL for the app when a task stops (modelsync's containers: 10 s).",
        f"{STOP_TIMEOUT_RANGE[0]}-{STOP_TIMEOUT_RANGE[1]}",
        check=lambda value, at: check_stop_timeout(at, value),
    )
    start_seconds: int = setting(
        60,
        "Load balancer health-check grace period, and the container health check's start period (at most 300).",
        "0-3600",
        check=_between(0, 3600, "seconds the app may take to start before health checks count"),
    )
    ingress: str = setting(
        "none",
        "A way in: its own load balancer, internal (private subnets) or internet-facing (HTTPS only). Needs `region`.",
        "`none`, `internal`, `public`",
        check=_one_of(INGRESS),
    )
    certificate_arn: str = setting(
        "",
        "HTTPS listener (TLS 1.2+ policy), HTTP redirected; required with `public`. In the stage's region.",
        "an ACM certificate ARN",
        check=_pattern(CERTIFICATE_ARN, "an ACM certificate ARN, arn:aws:acm:REGION:ACCOUNT:certificate/ID"),
    )
    ingress_cidrs: tuple[str, ...] = setting(
        (),
        "Who may reach the load balancer. Empty: anyone for `public`, the VPC for `internal`.",
        "IPv4 CIDR blocks",
        check=_cidrs,
        items="IPv4 CIDR blocks",
    )
    alarms: AppAlarmSettings = setting(
        AppAlarmSettings(), "When this app's alarms fire (the keys are listed under App alarms).", "an object"
    )
    name: str = derived("")  # the key under `apps`
    served_models: tuple[str, ...] = derived(())  # models, or every seeded model when models is empty

    @property
    def demo(self) -> bool:
        """No image: the app container is modelsync's own `serve` (a model listing)."""
        return not self.image

    @property
    def health_check_path(self) -> str:
        return self.health_path or "/readyz"  # the demo app: 200 only while the models verify

    @property
    def served_names(self) -> tuple[str, ...]:
        return tuple(spec.partition("@")[0] for spec in self.served_models)

    @property
    def pinned_models(self) -> tuple[str, ...]:
        return tuple(spec for spec in self.served_models if "@" in spec)

    @property
    def files_wait(self) -> int | None:
        """files_wait_seconds for the init container; None where the mode does not wait and it was left alone."""
        if not MODES[self.delivery_mode].late_files and self.files_wait_seconds == DEFAULT_WAIT_SECONDS:
            return None
        return self.files_wait_seconds

    def check_together(self, prefix: str) -> None:
        check_fargate_size(where(prefix, "cpu"), where(prefix, "memory_mib"), self.cpu, self.memory_mib)
        start_check_environment(
            MODES[self.delivery_mode],
            wait_seconds=self.files_wait,
            deep=self.verify_every_byte,
            name=lambda setting_name: where(prefix, setting_name),
        )
        if not 1 <= self.min_capacity <= self.max_capacity:
            fail(where(prefix, "min_capacity"), self.min_capacity, f"1 to max_capacity ({self.max_capacity})")
        if not self.min_capacity <= self.desired_count <= self.max_capacity:
            fail(
                where(prefix, "desired_count"),
                self.desired_count,
                f"min_capacity..max_capacity ({self.min_capacity}..{self.max_capacity})",
            )
        taken = {**TASK_PATHS, self.view_path: "view_path"}
        for path in self.writable_paths:
            check_task_path(path, where(prefix, "writable_paths"), taken)
            taken[path] = "another writable path"
        if self.ingress == "public" and not self.certificate_arn:
            raise SettingsError(
                f"{where(prefix, 'ingress')} = 'public' needs {prefix}certificate_arn: an internet-facing load "
                "balancer serves HTTPS only (HTTP redirects); request an ACM certificate for your domain, or use "
                "ingress 'internal'"
            )
        if self.ingress == "none" and (self.certificate_arn or self.ingress_cidrs):
            key = "certificate_arn" if self.certificate_arn else "ingress_cidrs"
            fail(where(prefix, key), getattr(self, key), "empty when ingress is 'none' (there is no load balancer)")
        if self.repository_credentials and parse_app_image(self.image, where(prefix, "image")).kind != "registry":
            fail(
                where(prefix, "repository_credentials"),
                self.repository_credentials,
                "empty for the demo app and ECR images (the execution role pulls those with its own rights); it is "
                "for images in another registry",
            )
        if not self.demo and self.ingress != "none" and not self.health_path:
            raise SettingsError(
                f"{where(prefix, 'health_path')} is required with an image and an ingress: the HTTP path the load "
                "balancer checks on the app's port, e.g. /status for MaskTerial's server"
            )


def check_app_name(name: str) -> str:
    if not APP_NAME.match(name):
        raise SettingsError(
            f"app name {name!r} under 'apps' is not allowed: use 1-20 lower-case letters, digits or '-', starting "
            "with a letter and not ending with '-' (it is part of resource and alarm names), e.g. 'ocr'"
        )
    return name


def certificate_place(arn: str) -> tuple[str, str]:
    """(region, account) of a certificate ARN that passed its setting's check."""
    found = CERTIFICATE_ARN.match(arn)
    assert found is not None, arn
    return found["region"], found["account"]


SECTIONS: tuple[type[Section], ...] = (
    StageSettings,
    NetworkSettings,
    StoreSettings,
    ImageSettings,
    SeedingSettings,
    MonitoringSettings,
    DeployAccessSettings,
    AppSettings,
    AppAlarmSettings,
)
