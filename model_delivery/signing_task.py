"""SigningTask: the signing step. `modelsync sign` holds the signing key and nothing else: it re-hashes every staged
file from the bucket against its manifest, signs the version (manifest signature, OMS bundle), moves LATEST with the
next sequence, removes the staging pointer, then brings the EFS mirror to each model's LATEST. It imports nothing
that parses archives or downloads models (docs/runtime.md, "Signed manifests"). The seed runner starts it when a
seeding task ends with exit 0.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import aws_ecs as ecs
from constructs import Construct

from model_delivery.contract import MODELS_PREFIX
from model_delivery.errors import ModelDeliveryError
from model_delivery.logs import check_retention, log_group
from model_delivery.metrics import MetricsOptions
from model_delivery.specs import check_pins
from model_delivery.store import ModelStore
from model_delivery.tasks import (
    MODELS_VOLUME,
    add_efs_volume,
    add_modelsync_container,
    check_fargate_size,
    fargate_task_definition,
)

SIGN_CONTAINER = "sign"
SIGN_STREAM_PREFIX = "sign"  # stream: sign/sign/<task id> (docs/contracts.md)
SIGN_EFS_ROOT = "/mnt/models"


class SigningTask(Construct):
    """The signing task definition: `modelsync sign`, the only task that holds the signing key.

    Props: store, image (the modelsync image; PaddleOCR not needed), mirror_pins (NAME@VERSION the apps pin,
    kept in the mirror beside LATEST), cpu, memory_mib (re-hashing streams: 1 vCPU hashes about a GiB a second),
    log_retention_days, metrics (MetricsOptions or None).
    Attributes: store, task_role (the store's signing role), task_definition, container, log_group."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        store: ModelStore,
        image: ecs.ContainerImage,
        mirror_pins: Sequence[str] = (),
        cpu: int = 1024,
        memory_mib: int = 2048,
        log_retention_days: int = 30,
        metrics: MetricsOptions | None = None,
    ) -> None:
        super().__init__(scope, id)
        check_pins(mirror_pins, "SigningTask mirror_pins", pinned_only=True)
        check_fargate_size("SigningTask cpu", "SigningTask memory_mib", cpu, memory_mib)
        self.store = store
        self.log_group = log_group(
            self, "Logs", check_retention(log_retention_days, "SigningTask log_retention_days"), store.log_encryption
        )
        self.task_role = store.signing_role
        self.task_definition = fargate_task_definition(
            self, "TaskDefinition", cpu=cpu, memory_mib=memory_mib, ephemeral_storage_gib=20, task_role=self.task_role
        )
        environment = {
            "MODELSYNC_BUCKET": store.bucket.bucket_name,
            "MODELSYNC_PREFIX": MODELS_PREFIX,
            "MODELSYNC_SIGNING_KEY": store.signing_key.key_arn,
            "MODELSYNC_TRUST_KEY": store.signing_key.key_arn,
        }
        if store.mirror is not None:
            add_efs_volume(self.task_definition, store.mirror)
            environment["MODELSYNC_EFS_ROOT"] = SIGN_EFS_ROOT
            # The apps' pinned versions stay in the mirror next to LATEST (efs mode reads them).
            environment["MODELSYNC_MIRROR_PINS"] = ",".join(mirror_pins)
        elif mirror_pins:
            raise ModelDeliveryError(
                "SigningTask mirror_pins keep versions in the EFS mirror, and the store has none: leave mirror_pins "
                "empty or give the ModelStore a mirror"
            )
        self.container = add_modelsync_container(
            self.task_definition,
            SIGN_CONTAINER,
            image=image,
            command=["modelsync", "sign"],
            log_group=self.log_group,
            stream_prefix=SIGN_STREAM_PREFIX,
            environment={**environment, **(metrics.environment() if metrics else {})},
        )
        if store.mirror is not None:
            self.container.add_mount_points(
                ecs.MountPoint(source_volume=MODELS_VOLUME, container_path=SIGN_EFS_ROOT, read_only=False)
            )
