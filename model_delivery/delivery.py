"""ModelDelivery: model delivery for one Fargate task definition and its app container.

It adds the init container (always the modelsync image) that pulls the models from the store's bucket
into a task-local volume (mode "s3") or verifies the store's EFS mirror (mode "efs"), then builds the
app's *view* in a task-local volume: links to the verified version directories, arranged by `layout`
(modelsync's layouts.yaml: flat, maskterial, paddlex). The app container starts only after the init
container exited 0 (dependsOn SUCCESS) and gets the view at `models_path` (read-only, writable only for
layouts that need it), the store read-only at /models (where the view's links point) and the layout's
environment (MODEL_PATH, PADDLE_PDX_CACHE_HOME). The task role gets exactly what the mode needs: read the
models prefix (s3), or mount the mirror read-only through its access point (efs). Nothing of modelsync
goes into the app's image.
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence

from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_logs as logs
from constructs import Construct

from model_delivery.contract import MODELS_PREFIX, SCRATCH_PATH, STORE_PATH, VIEW_PATH
from model_delivery.errors import ModelDeliveryError
from model_delivery.logs import check_retention, log_group
from model_delivery.nag import acknowledge_task_definition
from model_delivery.policies import mirror_access
from model_delivery.signing import verify_manifests
from model_delivery.specs import check_pins, names_of
from model_delivery.store import ModelStore
from model_delivery.tasks import MODELS_VOLUME, add_efs_volume, add_modelsync_container, scratch_volume
from modelsync.errors import ModelsyncError
from modelsync.layouts import Layout, load_layouts

MODES = ("s3", "efs")
VIEW_VOLUME = "model-view"


def delivery_layout(layout: str, models: Sequence[str]) -> Layout:
    """The layout by name, checked to place every model (the runtime's own rules, modelsync.layouts)."""
    try:
        found = load_layouts().get(layout)
        found.check(names_of(models))
    except ModelsyncError as exc:  # names the layout and the model it cannot place
        raise ModelDeliveryError(f"ModelDelivery layout: {exc}") from None
    return found


def check_models_path(path: str, where: str, taken: dict[str, str] | None = None) -> str:
    """An absolute, normalized path that neither is, contains nor lies inside a path the task uses."""
    taken = {STORE_PATH: "the model store", SCRATCH_PATH: "the scratch /tmp every container gets", **(taken or {})}
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
    """Props:
      task_definition: the app's Fargate task definition (awsvpc, platform 1.4.0 or later for efs).
      app_container: the app's container in it; it starts after the init container succeeded.
      store: the ModelStore (with a mirror for mode "efs").
      image: the modelsync image (ContainerImage: an ECR tag, a registry image or an asset of container/).
      models: NAME or NAME@VERSION (a pin: that version exactly; a name follows LATEST at each task start).
      mode: "s3" (each task pulls into its task storage, which must hold the models twice) or "efs".
      layout: how the view arranges the models (default "flat": <models_path>/<NAME>, MODEL_PATH set).
      models_path: where the app container finds the view (default /srv/models).
      log_group: where the init container logs (default: a new group, log_retention_days).
    Attributes: init (the init container), layout (modelsync.layouts.Layout), view_volume, mode.
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
    ) -> None:
        super().__init__(scope, id)
        if mode not in MODES:
            raise ModelDeliveryError(
                f"ModelDelivery mode = {mode!r} is not allowed: use 's3' (each task pulls its "
                "models from the bucket) or 'efs' (tasks read the EFS mirror)"
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
        mirror = store.require_mirror("ModelDelivery mode 'efs'") if mode == "efs" else None
        self.mode = mode
        self.layout = delivery_layout(layout, models)
        check_models_path(
            models_path, "ModelDelivery models_path", {VIEW_PATH: "where the init container builds the view"}
        )
        group = log_group or _default_log_group(self, log_retention_days, store)
        models_env = {
            "MODELSYNC_DEST": STORE_PATH,
            "MODELSYNC_MODELS": ",".join(models),
            "MODELSYNC_VIEW": VIEW_PATH,
            "MODELSYNC_LAYOUT": self.layout.name,
            # Only versions signed with the store's signing key are linked (pull and verify).
            "MODELSYNC_TRUST_KEY": store.signing_key.key_arn,
        }
        task_role = task_definition.task_role
        if mirror is None:
            task_definition.add_volume(name=MODELS_VOLUME)
            self.init = add_modelsync_container(
                task_definition,
                "model-pull",
                image=image,
                command=["modelsync", "pull"],
                log_group=group,
                stream_prefix="service",
                essential=False,
                environment={
                    **models_env,
                    "MODELSYNC_BUCKET": store.bucket.bucket_name,
                    "MODELSYNC_PREFIX": MODELS_PREFIX,
                    # The task volume dies with the task: no fsync per file (docs/runtime.md).
                    "MODELSYNC_DURABLE": "0",
                },
            )
            task_role.add_managed_policy(store.read_policy)
        else:
            add_efs_volume(task_definition, mirror)
            self.init = add_modelsync_container(
                task_definition,
                "model-verify",
                image=image,
                command=["modelsync", "verify"],
                log_group=group,
                stream_prefix="service",
                essential=False,
                environment=models_env,
            )
            task_role.add_to_principal_policy(mirror_access(mirror.file_system, mirror.access_point, write=False))
            task_role.add_to_principal_policy(verify_manifests(store.signing_key))
        self.view_volume = scratch_volume(task_definition, VIEW_VOLUME)
        self.init.add_mount_points(
            ecs.MountPoint(source_volume=MODELS_VOLUME, container_path=STORE_PATH, read_only=mirror is not None),
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
