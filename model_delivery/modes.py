"""The delivery modes: how a task gets its models. One entry per mode, and nothing outside this module tests a
mode's name: ModelDelivery, the alarms, the dashboard and the app's settings read what they need from here.

    s3       the init container `modelsync pull`s the models from the bucket into a task-local volume
    efs      the task mounts the store's EFS mirror read-only; the init container `modelsync verify`s it
    s3files  the task mounts the bucket itself (S3 Files) read-only; the init container verifies the versions it
             serves against their signed manifests there, waiting for files S3 Files has not shown yet

Each mode says which volume holds the store at /models and what the task role may do (`attach`), which init
container runs, how many copies of the served models the task's own storage must hold, which part of the store
it reads (the EFS mirror, the bucket's file system) and the group its tasks reach over NFS, whether its check
can hash every byte or wait for late files, and its row on the dashboard and its alarms.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs

from model_delivery.alarm_topic import AlarmSpec
from model_delivery.bucket_files import BucketFileSystem
from model_delivery.contract import MODELS_PREFIX
from model_delivery.errors import ModelDeliveryError
from model_delivery.metrics import DeliveryMetrics, graph
from model_delivery.policies import mirror_access
from model_delivery.signing import verify_manifests
from model_delivery.store import ModelStore
from model_delivery.tasks import MODELS_VOLUME, add_bucket_files_volume, add_efs_volume
from model_delivery.thresholds import AlarmThresholds


@dataclass(frozen=True)
class Sources:
    """Where a task's models come from: the store, and the bucket's S3 Files file system when one exists."""

    store: ModelStore
    bucket_files: BucketFileSystem | None = None

    def require_bucket_files(self) -> BucketFileSystem:
        if self.bucket_files is None:
            raise ModelDeliveryError(
                "ModelDelivery mode 's3files' needs the bucket's S3 Files file system: create a BucketFileSystem "
                "(vpc, the store's bucket, key and bucket_files_role) and give it as bucket_files"
            )
        return self.bucket_files


MAX_WAIT_SECONDS = 900  # an init container that waits longer holds the deployment; a stuck sync is a failure
DEFAULT_WAIT_SECONDS = 60  # observers report seconds to ~30 s before S3 Files shows a new object


@dataclass(frozen=True)
class DeliveryMode:
    name: str
    summary: str  # what it does, in the words an error message or a settings reference shows
    init_name: str  # the init container's name
    init_command: tuple[str, ...]
    writes_store: bool  # the init container writes the store (else it mounts it read-only too)
    task_storage_copies: int  # copies of the served models the task's own storage holds
    uses_mirror: bool  # reads the store's EFS mirror (the stage then watches the mirror's limits)
    uses_bucket_files: bool  # mounts the bucket's S3 Files file system (the stage then creates it)
    # What its tasks reach over NFS: (what it is, in rule descriptions; its security group), or None.
    nfs_peer: Callable[[Sources], tuple[str, ec2.ISecurityGroup]] | None
    verifies: bool  # its init container checks a store it did not write: it can hash every byte (deep)
    late_files: bool  # its store shows new objects late: its init container can wait for them
    # How a modelsync reader (the init container, the demo app's `serve`) reads the store at /models.
    store_environment: dict[str, str]
    # Adds the store's volume (named MODELS_VOLUME) and the task role's access; returns the init container's
    # variables for this mode.
    attach: Callable[[ecs.FargateTaskDefinition, Sources], dict[str, str]]
    dashboard_row: Callable[[DeliveryMetrics], list[cw.IWidget]]
    failure_metrics: Callable[[DeliveryMetrics], list[cw.IMetric]]  # beside InitFailures on the dashboard
    alarms: Callable[[DeliveryMetrics, AlarmThresholds], list[AlarmSpec]]


def _attach_s3(task_definition: ecs.FargateTaskDefinition, sources: Sources) -> dict[str, str]:
    store = sources.store
    task_definition.add_volume(name=MODELS_VOLUME)
    task_definition.task_role.add_managed_policy(store.read_policy)
    return {
        "MODELSYNC_BUCKET": store.bucket.bucket_name,
        "MODELSYNC_PREFIX": MODELS_PREFIX,
        # The task volume dies with the task: no fsync per file (docs/runtime.md).
        "MODELSYNC_DURABLE": "0",
    }


def _attach_efs(task_definition: ecs.FargateTaskDefinition, sources: Sources) -> dict[str, str]:
    store = sources.store
    mirror = store.require_mirror("ModelDelivery mode 'efs'")
    add_efs_volume(task_definition, mirror)
    task_definition.task_role.add_to_principal_policy(
        mirror_access(mirror.file_system, mirror.access_point, write=False)
    )
    task_definition.task_role.add_to_principal_policy(verify_manifests(store.signing_key))
    return {}


def _attach_bucket_files(task_definition: ecs.FargateTaskDefinition, sources: Sources) -> dict[str, str]:
    store, file_system = sources.store, sources.require_bucket_files()
    add_bucket_files_volume(task_definition, file_system.file_system_arn)
    # Reading through S3 Files: the mount, and the reads it makes straight from the bucket with the task's identity
    # (objects by version, the key through S3: the store's read policy).
    task_definition.task_role.add_managed_policy(store.read_policy)
    task_definition.task_role.add_to_principal_policy(file_system.mount_statement)
    return {
        # LATEST statements must name this repository (s3://BUCKET/models/), as in s3 mode.
        "MODELSYNC_BUCKET": store.bucket.bucket_name,
        "MODELSYNC_PREFIX": MODELS_PREFIX,
    }


def _verify_row(title: str) -> Callable[[DeliveryMetrics], list[cw.IWidget]]:
    return lambda m: [
        graph(title, [m.delivery("VerifyModels"), m.delivery("VerifyFailures")]),
        graph("View build time per task start (s)", [m.delivery("ViewSeconds", "Maximum")]),
    ]


def _pull_slow(m: DeliveryMetrics, t: AlarmThresholds) -> list[AlarmSpec]:
    return [
        AlarmSpec(
            "ModelPullSlow",
            m.delivery("PullSeconds", "Maximum"),
            t.pull_seconds,
            1,
            f"A task start spent more than {t.pull_seconds} s pulling its models.",
            comparison=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
        )
    ]


MODES: dict[str, DeliveryMode] = {
    mode.name: mode
    for mode in (
        DeliveryMode(
            name="s3",
            summary="each task pulls its models from the bucket into its own storage",
            init_name="model-pull",
            init_command=("modelsync", "pull"),
            writes_store=True,
            # Pull writes a new version next to the old one before switching, so the volume holds it twice.
            task_storage_copies=2,
            uses_mirror=False,
            uses_bucket_files=False,
            nfs_peer=None,
            verifies=False,  # pull hashes every byte it writes anyway
            late_files=False,
            store_environment={},
            attach=_attach_s3,
            dashboard_row=lambda m: [
                graph(
                    "Model pull time per task start (s)",
                    [m.delivery("PullSeconds", "Maximum"), m.delivery("PullSeconds", "Average")],
                ),
                graph("Pulled per task start", [m.delivery("PullBytes")], right=[m.delivery("PullFiles")]),
            ],
            failure_metrics=lambda m: [m.delivery("PullFailures"), m.delivery("PullRetries")],
            alarms=_pull_slow,
        ),
        DeliveryMode(
            name="efs",
            summary="tasks mount the EFS mirror read-only",
            init_name="model-verify",
            init_command=("modelsync", "verify"),
            writes_store=False,
            task_storage_copies=0,
            uses_mirror=True,
            uses_bucket_files=False,
            nfs_peer=lambda sources: (
                "the model mirror",
                sources.store.require_mirror("ModelDelivery mode 'efs'").security_group,
            ),
            verifies=True,
            late_files=False,  # the signing task fills the mirror before it moves LATEST
            store_environment={},
            attach=_attach_efs,
            dashboard_row=_verify_row("EFS mirror check at task start"),
            failure_metrics=lambda m: [m.delivery("VerifyFailures")],
            alarms=lambda m, t: [],
        ),
        DeliveryMode(
            name="s3files",
            summary="tasks mount the models bucket itself read-only, through Amazon S3 Files",
            init_name="model-verify",
            init_command=("modelsync", "verify"),
            writes_store=False,
            task_storage_copies=0,
            uses_mirror=False,
            uses_bucket_files=True,
            nfs_peer=lambda sources: ("the models bucket file system", sources.require_bucket_files().security_group),
            verifies=True,
            late_files=True,  # S3 Files shows new objects asynchronously
            store_environment={"MODELSYNC_STORE": "bucket"},  # laid out as the bucket, not as pull writes it
            attach=_attach_bucket_files,
            dashboard_row=_verify_row("Bucket file system check at task start"),
            failure_metrics=lambda m: [m.delivery("VerifyFailures")],
            alarms=lambda m, t: [],
        ),
    )
}


def start_check_environment(
    mode: DeliveryMode, *, wait_seconds: int | None, deep: bool, name: Callable[[str], str]
) -> dict[str, str]:
    """The init container's variables for how it checks the store at start: `deep` hashes every byte, and a mode
    whose store shows files late waits up to `wait_seconds` for them (None: DEFAULT_WAIT_SECONDS). One line naming
    the prop or setting (`name` of "verify_every_byte", "files_wait_seconds") when the mode cannot do that."""
    if deep and not mode.verifies:
        raise ModelDeliveryError(
            f"{name('verify_every_byte')} = true is not allowed in mode '{mode.name}' ({mode.summary}: it hashes every "
            f"byte already); use it with mode {_modes_that(lambda m: m.verifies)}"
        )
    if wait_seconds is not None:
        if (
            not isinstance(wait_seconds, int)
            or isinstance(wait_seconds, bool)
            or not 0 <= wait_seconds <= MAX_WAIT_SECONDS
        ):
            raise ModelDeliveryError(
                f"{name('files_wait_seconds')} = {wait_seconds!r} is not allowed: use whole seconds from 0 to "
                f"{MAX_WAIT_SECONDS}"
            )
        if not mode.late_files:
            raise ModelDeliveryError(
                f"{name('files_wait_seconds')} = {wait_seconds} is not allowed in mode '{mode.name}': its store never "
                f"shows a version before its files; leave it unset, or use mode {_modes_that(lambda m: m.late_files)}"
            )
    environment = {"MODELSYNC_DEEP": "true"} if deep else {}
    if mode.late_files:
        environment["MODELSYNC_WAIT_FOR_FILES"] = str(DEFAULT_WAIT_SECONDS if wait_seconds is None else wait_seconds)
    return environment


def _modes_that(test: Callable[[DeliveryMode], bool]) -> str:
    return " or ".join(repr(m.name) for m in MODES.values() if test(m))


def allowed_modes() -> str:
    return " or ".join(f"'{mode.name}' ({mode.summary})" for mode in MODES.values())


def delivery_mode(name: object, where: str) -> DeliveryMode:
    """The mode called `name`; one line naming `where` when there is none."""
    if not isinstance(name, str) or name not in MODES:
        raise ModelDeliveryError(f"{where} = {name!r} is not allowed: use {allowed_modes()}")
    return MODES[name]
