"""The images the stage runs: modelsync's own (a Docker asset built from container/ at deploy, or one tag in
the project's ECR repository) and each app container's (setting apps.NAME.image, see stacks/app_image.py)."""

from __future__ import annotations

from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from stacks.app_image import parse_app_image
from stacks.errors import SettingsError
from stacks.settings import AppSettings, ImageSettings

CONTAINER_DIR = Path(__file__).resolve().parent.parent / "container"
IMAGE_PLATFORM = ecr_assets.Platform.LINUX_AMD64  # matches the task definitions' RuntimePlatform (X86_64)
# Keep build leftovers and tests out of the asset: they would change its hash without changing the image.
ASSET_EXCLUDES = ["**/__pycache__", "**/*.pyc", "**/*.egg-info", "build", "tests", "**/tests", ".pytest_cache", ".venv"]


def modelsync_images(
    image_settings: ImageSettings, repository: ecr.IRepository, container_dir: Path = CONTAINER_DIR
) -> tuple[ecs.ContainerImage, ecs.ContainerImage]:
    """(service image, seeding image): Docker assets built from container/ at deploy, or one tag in ECR."""
    if image_settings.image_source == "ecr":
        # One image, several roles: the tag must be built with WITH_PADDLEOCR=1 for seeding to work.
        image = ecs.ContainerImage.from_ecr_repository(repository, image_settings.image_tag)
        return image, image
    if not (container_dir / "Dockerfile").is_file():
        raise SettingsError(
            f"setting 'image_source' = 'asset' builds the image from {container_dir}, but it has no "
            "Dockerfile: restore it, or use image_source=ecr with an image_tag in the project's repository"
        )
    # Built for the platform the task definitions declare (X86_64), also when deploying from an ARM
    # machine; otherwise every task fails to start with an exec format / platform error.
    service = ecs.ContainerImage.from_asset(str(container_dir), exclude=ASSET_EXCLUDES, platform=IMAGE_PLATFORM)
    seeding = ecs.ContainerImage.from_asset(
        str(container_dir), exclude=ASSET_EXCLUDES, platform=IMAGE_PLATFORM, build_args={"WITH_PADDLEOCR": "1"}
    )
    return service, seeding


def app_image(
    scope: Construct, app: AppSettings, repository: ecr.IRepository, demo_image: ecs.ContainerImage
) -> ecs.ContainerImage:
    """The app container's image (setting apps.NAME.image): the demo (modelsync's own image), a tag of the project
    repository, another ECR repository (the execution role may pull exactly it), or any registry."""
    image = parse_app_image(app.image, f"setting 'apps.{app.name}.image'")
    if image.kind == "demo":
        return demo_image
    if image.kind == "project":
        return ecs.ContainerImage.from_ecr_repository(repository, image.tag_or_digest)
    if image.kind == "ecr":
        other = ecr.Repository.from_repository_attributes(
            scope,
            "AppRepository",
            repository_name=image.repository,
            repository_arn=cdk.Stack.of(scope).format_arn(
                service="ecr",
                account=image.account,
                region=image.region,
                resource="repository",
                resource_name=image.repository,
            ),
        )
        return ecs.ContainerImage.from_ecr_repository(other, image.tag_or_digest)
    if app.repository_credentials:
        # The execution role may read exactly this secret (the image's grant: GetSecretValue, DescribeSecret).
        secret = secretsmanager.Secret.from_secret_complete_arn(
            scope, "RegistryCredentials", app.repository_credentials
        )
        return ecs.ContainerImage.from_registry(image.reference, credentials=secret)
    return ecs.ContainerImage.from_registry(image.reference)
