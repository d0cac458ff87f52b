"""The delivery modes: how a task gets its models. One entry per mode, and nothing outside this module tests a
mode's name: ModelDelivery, the alarms, the dashboard and the app's settings read what they need from here.

    s3   the init container `modelsync pull`s the models from the bucket into a task-local volume
    efs  the task mounts the store's EFS mirror read-only; the init container `modelsync verify`s it

Each mode says which volume holds the store at /models and what the task role may do (`attach`), which init
container runs, how many copies of the served models the task's own storage must hold, whether it reads the
EFS mirror, and its row on the dashboard and its alarms.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_ecs as ecs

from model_delivery.alarm_topic import AlarmSpec
from model_delivery.contract import MODELS_PREFIX
from model_delivery.errors import ModelDeliveryError
from model_delivery.metrics import DeliveryMetrics, graph
from model_delivery.policies import mirror_access
from model_delivery.signing import verify_manifests
from model_delivery.store import ModelStore
from model_delivery.tasks import MODELS_VOLUME, add_efs_volume
from model_delivery.thresholds import AlarmThresholds


@dataclass(frozen=True)
class DeliveryMode:
    name: str
    summary: str  # what it does, in the words an error message or a settings reference shows
    init_name: str  # the init container's name
    init_command: tuple[str, ...]
    writes_store: bool  # the init container writes the store (else it mounts it read-only too)
    task_storage_copies: int  # copies of the served models the task's own storage holds
    uses_mirror: bool  # reads the store's EFS mirror (the stage then watches the mirror's limits)
    # Adds the store's volume (named MODELS_VOLUME) and the task role's access; returns the init container's
    # variables for this mode.
    attach: Callable[[ecs.FargateTaskDefinition, ModelStore], dict[str, str]]
    dashboard_row: Callable[[DeliveryMetrics], list[cw.IWidget]]
    failure_metrics: Callable[[DeliveryMetrics], list[cw.IMetric]]  # beside InitFailures on the dashboard
    alarms: Callable[[DeliveryMetrics, AlarmThresholds], list[AlarmSpec]]


def _attach_s3(task_definition: ecs.FargateTaskDefinition, store: ModelStore) -> dict[str, str]:
    task_definition.add_volume(name=MODELS_VOLUME)
    task_definition.task_role.add_managed_policy(store.read_policy)
    return {
        "MODELSYNC_BUCKET": store.bucket.bucket_name,
        "MODELSYNC_PREFIX": MODELS_PREFIX,
        # The task volume dies with the task: no fsync per file (docs/runtime.md).
        "MODELSYNC_DURABLE": "0",
    }


def _attach_efs(task_definition: ecs.FargateTaskDefinition, store: ModelStore) -> dict[str, str]:
    mirror = store.require_mirror("ModelDelivery mode 'efs'")
    add_efs_volume(task_definition, mirror)
    task_definition.task_role.add_to_principal_policy(
        mirror_access(mirror.file_system, mirror.access_point, write=False)
    )
    task_definition.task_role.add_to_principal_policy(verify_manifests(store.signing_key))
    return {}


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
            attach=_attach_efs,
            dashboard_row=lambda m: [
                graph("EFS mirror check at task start", [m.delivery("VerifyModels"), m.delivery("VerifyFailures")]),
                graph("View build time per task start (s)", [m.delivery("ViewSeconds", "Maximum")]),
            ],
            failure_metrics=lambda m: [m.delivery("VerifyFailures")],
            alarms=lambda m, t: [],
        ),
    )
}


def allowed_modes() -> str:
    return " or ".join(f"'{mode.name}' ({mode.summary})" for mode in MODES.values())


def delivery_mode(name: object, where: str) -> DeliveryMode:
    """The mode called `name`; one line naming `where` when there is none."""
    if not isinstance(name, str) or name not in MODES:
        raise ModelDeliveryError(f"{where} = {name!r} is not allowed: use {allowed_modes()}")
    return MODES[name]
