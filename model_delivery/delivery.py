"""ModelDelivery: model delivery for one Fargate task definition and its app container.

It adds the init container (always the modelsync image) that gets the models the way its delivery mode says
(model_delivery/modes.py: pull them from the store's bucket into a task-local volume, or verify the store's EFS
mirror), then builds the app's *view* in a task-local volume: links to the verified version directories,
arranged by `layout` (modelsync's layouts.yaml: flat, maskterial, paddlex). The app container starts only after
the init container exited 0 (dependsOn SUCCESS) and gets the view at `models_path` (read-only, writable only for
layouts that need it), the store read-only at /models (where the view's links point) and the layout's
environment (MODEL_PATH, PADDLE_PDX_CACHE_HOME). The task role gets exactly what the mode needs. Nothing of
modelsync goes into the app's image.

The layout's rules travel in the task definition (MODELSYNC_LAYOUT_RULES): the init container builds the view
from the rules synth checked, whatever layouts file its image bundles (docs/runtime.md, "Views and layouts").
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Mapping, Sequence

from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_logs as logs
from constructs import Construct

from model_delivery.bucket_files import BucketFileSystem
from model_delivery.contract import SCRATCH_PATH, STORE_PATH, VIEW_PATH
from model_delivery.errors import ModelDeliveryError
from model_delivery.logs import check_retention, log_group
from model_delivery.metrics import MetricsOptions
from model_delivery.modes import Sources, delivery_mode, start_check_environment
from model_delivery.nag import acknowledge_task_definition
from model_delivery.specs import check_pins, names_of
from model_delivery.store import ModelStore
from model_delivery.tasks import MODELS_VOLUME, add_modelsync_container, scratch_volume
from modelsync.errors import ModelsyncError
from modelsync.layouts import Layout, load_layouts

VIEW_VOLUME = "model-view"
# Paths every task of model delivery uses: an app's view or writable path may not be, contain or lie in one.
TASK_PATHS = {
    STORE_PATH: "the model store",
    SCRATCH_PATH: "the scratch /tmp every container gets",
    VIEW_PATH: "where the init container builds the view",
}


def delivery_layout(layout: str, models: Sequence[str], where: str) -> Layout:
    """The layout by name, checked to place every model (the runtime's own rules, modelsync.layouts)."""
    try:
        found = load_layouts().get(layout)
        found.check(names_of(models))
    except ModelsyncError as exc:  # names the layout and the model it cannot place
        raise ModelDeliveryError(f"{where} = {layout!r} is not allowed: {exc}") from None
    return found


def check_task_path(path: object, where: str, taken: Mapping[str, str] = TASK_PATHS) -> str:
    """An absolute, normalized path that neither is, contains nor lies inside a path in `taken`."""
    if not isinstance(path, str) or not path.startswith("/") or posixpath.normpath(path) != path or path == "/":
        raise ModelDeliveryError(
            f"{where} = {path!r} is not allowed: use an absolute, normalized path other than / (e.g. /srv/models)"
        )
    for other, what in taken.items():
        if path == other or path.startswith(other.rstrip("/") + "/") or other.startswith(path + "/"):
            raise ModelDeliveryError(
                f"{where} = {path!r} is not allowed: use a path that neither is nor contains "
                f"nor lies inside {other} ({what})"
            )
    return path


class ModelDelivery(Construct):
    """Model delivery for any Fargate task definition and its app container: the init container, volumes, the
    app's view of its models, IAM.

    Props:
      task_definition: the app's Fargate task definition (awsvpc, platform 1.4.0 or later for efs).
      app_container: the app's container in it; it starts after the init container succeeded.
      store: the ModelStore (with a mirror for a mode that reads it).
      image: the modelsync image (ContainerImage: an ECR tag, a registry image or an asset of container/).
      models: NAME or NAME@VERSION (a pin: that version exactly; a name follows LATEST at each task start).
      mode: a delivery mode of model_delivery.modes: "s3" (default), "efs" or "s3files".
      verify_every_byte: a mode that checks a store it did not write (efs, s3files) hashes every byte at start
        instead of checking sizes (default False).
      files_wait_seconds: a mode whose store shows new files late (s3files): how long the init container waits
        for a version's files (default None: the mode's default, 60 s; 0: no wait).
      bucket_files: the BucketFileSystem the task mounts in mode s3files (in the task definition's stack).
      layout: how the view arranges the models (default "flat": <models_path>/<NAME>, MODEL_PATH set).
      models_path: where the app container finds the view (default /srv/models).
      log_group: where the init container logs (default: a new group, log_retention_days).
      metrics: MetricsOptions (namespace, stage, app): the init container writes its metrics there (alarms and
        dashboards read them); None: no metrics.
    Attributes: init (the init container), layout (modelsync.layouts.Layout), view_volume, mode (its name),
      delivery_mode (its DeliveryMode), metrics (the MetricsOptions or None).
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        task_definition: ecs.FargateTaskDefinition,
        app_container: ecs.ContainerDefinition,
        store: ModelStore,
        image: ecs.ContainerImage,
        models: Sequence[str],
        mode: str = "s3",
        layout: str = "flat",
        models_path: str = "/srv/models",
        log_group: logs.ILogGroup | None = None,
        log_retention_days: int = 30,
        metrics: MetricsOptions | None = None,
        verify_every_byte: bool = False,
        files_wait_seconds: int | None = None,
        bucket_files: BucketFileSystem | None = None,
    ) -> None:
        super().__init__(scope, id)
        self.delivery_mode = delivery_mode(mode, "ModelDelivery mode")
        start_check = start_check_environment(
            self.delivery_mode,
            wait_seconds=files_wait_seconds,
            deep=verify_every_byte,
            name=lambda prop: f"ModelDelivery {prop}",
        )
        if not models:
            raise ModelDeliveryError(
                "ModelDelivery models is empty: name the models the app loads (NAME, or NAME@VERSION to pin one)"
            )
        check_pins(models, "ModelDelivery models")
        if app_container.task_definition is not task_definition:
            raise ModelDeliveryError(
                f"ModelDelivery app_container {app_container.container_name!r} belongs to "
                "another task definition: give the task definition it was added to"
            )
        if not task_definition.is_fargate_compatible:
            raise ModelDeliveryError(
                "ModelDelivery task_definition is not Fargate-compatible: use ecs.FargateTaskDefinition"
            )
        if metrics is not None and not isinstance(metrics, MetricsOptions):
            raise ModelDeliveryError("ModelDelivery metrics is not a MetricsOptions: build it with MetricsOptions(...)")
        self.mode = self.delivery_mode.name
        self.metrics = metrics
        self.layout = delivery_layout(layout, models, "ModelDelivery layout")
        check_task_path(models_path, "ModelDelivery models_path")
        group = log_group or _default_log_group(self, log_retention_days, store)
        environment = {
            "MODELSYNC_DEST": STORE_PATH,
            "MODELSYNC_MODELS": ",".join(models),
            "MODELSYNC_VIEW": VIEW_PATH,
            "MODELSYNC_LAYOUT": self.layout.name,
            "MODELSYNC_LAYOUT_RULES": json.dumps(self.layout.document(), sort_keys=True, separators=(",", ":")),
            # Only versions signed with the store's signing key are linked (pull and verify).
            "MODELSYNC_TRUST_KEY": store.signing_key.key_arn,
            **self.delivery_mode.attach(task_definition, Sources(store, bucket_files)),
            **self.delivery_mode.store_environment,
            **start_check,
            **(metrics.environment(self.mode) if metrics is not None else {}),
        }
        self.init = add_modelsync_container(
            task_definition,
            self.delivery_mode.init_name,
            image=image,
            command=list(self.delivery_mode.init_command),
            log_group=group,
            stream_prefix="service",
            essential=False,
            environment=environment,
        )
        self.view_volume = scratch_volume(task_definition, VIEW_VOLUME)
        self.init.add_mount_points(
            ecs.MountPoint(
                source_volume=MODELS_VOLUME, container_path=STORE_PATH, read_only=not self.delivery_mode.writes_store
            ),
            ecs.MountPoint(source_volume=self.view_volume, container_path=VIEW_PATH, read_only=False),
        )
        for name, value in self.layout.app_environment(models_path).items():
            app_container.add_environment(name, value)
        app_container.add_mount_points(
            # The view's links point into the store: the app mounts it where the init container did.
            ecs.MountPoint(source_volume=MODELS_VOLUME, container_path=STORE_PATH, read_only=True),
            ecs.MountPoint(
                source_volume=self.view_volume, container_path=models_path, read_only=not self.layout.app_writable
            ),
        )
        app_container.add_container_dependencies(
            ecs.ContainerDependency(container=self.init, condition=ecs.ContainerDependencyCondition.SUCCESS)
        )
        acknowledge_task_definition(task_definition)


def _default_log_group(scope: Construct, retention_days: int, store: ModelStore) -> logs.LogGroup:
    return log_group(
        scope, "Logs", check_retention(retention_days, "ModelDelivery log_retention_days"), store.log_encryption
    )
