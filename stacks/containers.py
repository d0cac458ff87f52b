"""What every modelsync task and container has in common: a Linux/x86-64 Fargate task definition with
the same cdk-nag acknowledgments, the EFS mirror volume, and containers with the image, non-root user,
read-only root file system with a scratch /tmp, CloudWatch logs. One place so the service, init and
seeding tasks cannot drift apart."""

from __future__ import annotations

from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from constructs import Construct

from stacks.app_image import parse_app_image
from stacks.errors import SettingsError
from stacks.model_mirror import ModelMirror
from stacks.nag import acknowledge_task_definition
from stacks.settings import FARGATE_DEFAULT_EPHEMERAL_GIB, SCRATCH_PATH, STORE_PATH, Settings

CONTAINER_DIR = Path(__file__).resolve().parent.parent / "container"
IMAGE_USER = "10001:10001"  # docs/contracts.md: uid/gid of the image user
MODELS_PATH = STORE_PATH
# modelsync ends within a chunk on SIGTERM (modelsync/stop.py); 10 s leaves room for the clean-up.
MODELSYNC_STOP_TIMEOUT_SECONDS = 10
IMAGE_PLATFORM = ecr_assets.Platform.LINUX_AMD64  # matches the task definitions' RuntimePlatform (X86_64)
MODELS_VOLUME = "models"
# Keep build leftovers and tests out of the asset: they would change its hash without changing the image.
ASSET_EXCLUDES = ["**/__pycache__", "**/*.pyc", "**/*.egg-info", "build", "tests", "**/tests", ".pytest_cache", ".venv"]


def images(settings: Settings, repository: ecr.IRepository,
           container_dir: Path = CONTAINER_DIR) -> tuple[ecs.ContainerImage, ecs.ContainerImage]:
    """(service image, seeding image): Docker assets built from container/ at deploy, or one tag in ECR."""
    if settings.image_source == "ecr":
        # One image, several roles: the tag must be built with WITH_PADDLEOCR=1 for seeding to work.
        image = ecs.ContainerImage.from_ecr_repository(repository, settings.image_tag)
        return image, image
    if not (container_dir / "Dockerfile").is_file():
        raise SettingsError(f"setting 'image_source' = 'asset' builds the image from {container_dir}, but it has no "
                            "Dockerfile: restore it, or use image_source=ecr with an image_tag in the project's repository")
    # Built for the platform the task definitions declare (X86_64), also when deploying from an ARM
    # machine; otherwise every task fails to start with an exec format / platform error.
    service = ecs.ContainerImage.from_asset(str(container_dir), exclude=ASSET_EXCLUDES, platform=IMAGE_PLATFORM)
    seeding = ecs.ContainerImage.from_asset(str(container_dir), exclude=ASSET_EXCLUDES, platform=IMAGE_PLATFORM,
                                            build_args={"WITH_PADDLEOCR": "1"})
    return service, seeding


def ephemeral_storage(gib: int) -> int | None:
    """Fargate takes 21-200 GiB when set; the 20 GiB default is expressed by not setting it."""
    return None if gib == FARGATE_DEFAULT_EPHEMERAL_GIB else gib


def fargate_task_definition(scope: Construct, id: str, *, cpu: int, memory_mib: int, ephemeral_storage_gib: int,
                            task_role: iam.IRole) -> ecs.FargateTaskDefinition:
    task_definition = ecs.FargateTaskDefinition(
        scope, id,
        cpu=cpu,
        memory_limit_mib=memory_mib,
        ephemeral_storage_gib=ephemeral_storage(ephemeral_storage_gib),
        task_role=task_role,
        runtime_platform=ecs.RuntimePlatform(operating_system_family=ecs.OperatingSystemFamily.LINUX,
                                             cpu_architecture=ecs.CpuArchitecture.X86_64),
    )
    acknowledge_task_definition(task_definition)
    return task_definition


def add_efs_volume(task_definition: ecs.TaskDefinition, mirror: ModelMirror) -> None:
    """The mirror's access point with TLS and IAM authorization (both required with an access point)."""
    task_definition.add_volume(name=MODELS_VOLUME, efs_volume_configuration=ecs.EfsVolumeConfiguration(
        file_system_id=mirror.file_system.file_system_id,
        transit_encryption="ENABLED",
        authorization_config=ecs.AuthorizationConfig(access_point_id=mirror.access_point.access_point_id,
                                                     iam="ENABLED")))


def scratch_volume(task_definition: ecs.TaskDefinition, name: str) -> str:
    """A task-local volume (Fargate ephemeral storage) for one writable path."""
    task_definition.add_volume(name=name)
    return name


def add_task_container(task_definition: ecs.TaskDefinition, name: str, *, image: ecs.ContainerImage,
                       command: list[str] | None, log_group: logs.ILogGroup, stream_prefix: str,
                       environment: dict[str, str], user: str | None, essential: bool = True,
                       health_check: ecs.HealthCheck | None = None,
                       stop_timeout_seconds: int = MODELSYNC_STOP_TIMEOUT_SECONDS) -> ecs.ContainerDefinition:
    """Any container of ours: read-only root file system with a scratch /tmp, CloudWatch logs, and an init
    process (PID 1 that forwards ECS's SIGTERM and reaps children; Python as PID 1 ignores SIGTERM)."""
    container = task_definition.add_container(
        name,
        container_name=name,
        image=image,
        command=command or None,
        essential=essential,
        user=user,
        readonly_root_filesystem=True,
        environment=environment,
        logging=ecs.LogDrivers.aws_logs(stream_prefix=stream_prefix, log_group=log_group),
        health_check=health_check,
        linux_parameters=ecs.LinuxParameters(task_definition, f"{name}-linux", init_process_enabled=True),
        stop_timeout=cdk.Duration.seconds(stop_timeout_seconds),
    )
    add_scratch(container, task_definition, f"{name}-tmp", SCRATCH_PATH)
    return container


def add_modelsync_container(task_definition: ecs.TaskDefinition, name: str, **kwargs) -> ecs.ContainerDefinition:
    """A container on the modelsync image, as its non-root image user."""
    return add_task_container(task_definition, name, user=IMAGE_USER, **kwargs)


def add_scratch(container: ecs.ContainerDefinition, task_definition: ecs.TaskDefinition, volume: str,
                path: str) -> None:
    """A writable task-local volume at path (the root file system stays read-only)."""
    container.add_mount_points(ecs.MountPoint(source_volume=scratch_volume(task_definition, volume),
                                              container_path=path, read_only=False))


def app_image(scope: Construct, settings: Settings, repository: ecr.IRepository,
              demo_image: ecs.ContainerImage) -> ecs.ContainerImage:
    """The app container's image (setting app_image): the demo (modelsync's own image), a tag of the project
    repository, another ECR repository (the execution role may pull exactly it), or any registry."""
    image = parse_app_image(settings.app_image)
    if image.kind == "demo":
        return demo_image
    if image.kind == "project":
        return ecs.ContainerImage.from_ecr_repository(repository, image.tag_or_digest)
    if image.kind == "ecr":
        other = ecr.Repository.from_repository_attributes(
            scope, "AppRepository", repository_name=image.repository,
            repository_arn=cdk.Stack.of(scope).format_arn(service="ecr", account=image.account, region=image.region,
                                                         resource="repository", resource_name=image.repository))
        return ecs.ContainerImage.from_ecr_repository(other, image.tag_or_digest)
    return ecs.ContainerImage.from_registry(image.reference)
