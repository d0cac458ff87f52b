"""Builds the three stacks of one stage into an App (used by app.py and by the tests)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from model_delivery.seeding import SEED_RUNNER_DIR
from stacks.images import CONTAINER_DIR
from stacks.network import NetworkStack
from stacks.replacement import rename_on_replacement
from stacks.service import ServiceStack
from stacks.settings import Settings
from stacks.storage import StorageStack


@dataclass(frozen=True)
class StageStacks:
    network: NetworkStack
    storage: StorageStack
    service: ServiceStack

    @property
    def stacks(self) -> tuple[cdk.Stack, ...]:
        return (self.network, self.storage, self.service)


def stack_id(stage: str, part: str) -> str:
    return f"ModelDelivery-{stage}-{part}"  # docs/contracts.md


def build(
    app: cdk.App, settings: Settings, *, container_dir: Path = CONTAINER_DIR, seed_runner_dir: Path = SEED_RUNNER_DIR
) -> StageStacks:
    env = cdk.Environment(account=settings.account, region=settings.region)
    network = NetworkStack(
        app,
        stack_id(settings.stage, "Network"),
        settings=settings,
        env=env,
        description=f"Model delivery ({settings.stage}): VPC and security groups",
    )
    storage = StorageStack(
        app,
        stack_id(settings.stage, "Storage"),
        settings=settings,
        env=env,
        vpc=network.vpc,
        file_system_security_group=network.security_groups.file_system,
        description=f"Model delivery ({settings.stage}): KMS key, models bucket, EFS mirror",
    )
    service = ServiceStack(
        app,
        stack_id(settings.stage, "Service"),
        settings=settings,
        env=env,
        network=network,
        storage=storage,
        container_dir=container_dir,
        seed_runner_dir=seed_runner_dir,
        description=f"Model delivery ({settings.stage}): ECS service, seeding task, seed runner",
    )
    for key, value in {**settings.tags, "stage": settings.stage}.items():
        cdk.Tags.of(app).add(key, value)
    rename_on_replacement(app)  # a replaced producer resource reaches its consumers (stacks/replacement.py)
    return StageStacks(network=network, storage=storage, service=service)


def enable_nag(app: cdk.App) -> None:
    """From here on, synth fails on any cdk-nag AwsSolutions finding neither cured nor acknowledged."""
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
