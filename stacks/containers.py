"""What every modelsync container has in common: the image, non-root user, read-only root file
system with a scratch /tmp, CloudWatch logs. One helper so the service, init and seeding
containers cannot drift apart."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_logs as logs

from stacks.errors import SettingsError
from stacks.settings import FARGATE_DEFAULT_EPHEMERAL_GIB, Settings

CONTAINER_DIR = Path(__file__).resolve().parent.parent / "container"
IMAGE_USER = "10001:10001"  # docs/contracts.md: uid/gid of the image user
MODELS_PATH = "/models"
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
    service = ecs.ContainerImage.from_asset(str(container_dir), exclude=ASSET_EXCLUDES)
    seeding = ecs.ContainerImage.from_asset(str(container_dir), exclude=ASSET_EXCLUDES,
                                            build_args={"WITH_PADDLEOCR": "1"})
    return service, seeding


def ephemeral_storage(gib: int) -> int | None:
    """Fargate takes 21-200 GiB when set; the 20 GiB default is expressed by not setting it."""
    return None if gib == FARGATE_DEFAULT_EPHEMERAL_GIB else gib


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
