"""What every modelsync task and container has in common: a Linux/x86-64 Fargate task definition with
the same cdk-nag acknowledgments, the EFS mirror volume, and containers with the image, non-root user,
read-only root file system with a scratch /tmp, CloudWatch logs. One place so the service, init and
seeding tasks cannot drift apart."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from constructs import Construct

from stacks.errors import SettingsError
from stacks.model_mirror import ModelMirror
from stacks.nag import acknowledge_task_definition
from stacks.settings import FARGATE_DEFAULT_EPHEMERAL_GIB, Settings

CONTAINER_DIR = Path(__file__).resolve().parent.parent / "container"
IMAGE_USER = "10001:10001"  # docs/contracts.md: uid/gid of the image user
MODELS_PATH = "/models"
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


def add_modelsync_container(task_definition: ecs.TaskDefinition, name: str, *, image: ecs.ContainerImage,
                            command: list[str], log_group: logs.ILogGroup, stream_prefix: str,
                            environment: dict[str, str], essential: bool = True,
                            health_check: ecs.HealthCheck | None = None) -> ecs.ContainerDefinition:
    container = task_definition.add_container(
        name,
        container_name=name,
        image=image,
        command=command,
        essential=essential,
        user=IMAGE_USER,
        readonly_root_filesystem=True,
        environment=environment,
        logging=ecs.LogDrivers.aws_logs(stream_prefix=stream_prefix, log_group=log_group),
        health_check=health_check,
    )
    # The root file system is read-only; Python and the libraries it loads still need a /tmp.
    container.add_mount_points(ecs.MountPoint(source_volume=scratch_volume(task_definition, f"{name}-tmp"),
                                              container_path="/tmp", read_only=False))
    return container
