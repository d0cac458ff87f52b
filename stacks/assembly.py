"""Builds the three stacks of one stage into an App (used by app.py and by the tests)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from model_delivery.seeding import SEED_RUNNER_DIR
from stacks.images import CONTAINER_DIR
from stacks.naming import stack_id
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


def build(
    app: cdk.App, settings: Settings, *, container_dir: Path = CONTAINER_DIR, seed_runner_dir: Path = SEED_RUNNER_DIR
) -> StageStacks:
    stage = settings.stage
    env = cdk.Environment(account=stage.env_account, region=stage.env_region)
    network = NetworkStack(
        app,
        stack_id(stage.name, "Network"),
        stage=stage,
        network=settings.network,
        env=env,
        description=f"Model delivery ({stage.name}): VPC and the EFS mirror's security group",
    )
    storage = StorageStack(
        app,
        stack_id(stage.name, "Storage"),
        stage=stage,
        store=settings.store,
        image=settings.image,
        env=env,
        vpc=network.vpc,
        file_system_security_group=network.file_system_security_group,
        description=f"Model delivery ({stage.name}): KMS keys, models bucket, EFS mirror, ECR repository",
    )
    service = ServiceStack(
        app,
        stack_id(stage.name, "Service"),
        stage=stage,
        apps=settings.apps,
        image=settings.image,
        seeding=settings.seeding,
        seeded_models=settings.seeded_models,
        mirror_pins=settings.mirror_pins,
        catalog_names=settings.catalog_names,
        seed_fingerprint=settings.seed_fingerprint,
        monitoring=settings.monitoring,
        vpc=network.vpc,
        file_system_security_group=network.file_system_security_group,
        store=storage.store,
        repository=storage.repository,
        container_dir=container_dir,
        seed_runner_dir=seed_runner_dir,
        env=env,
        description=f"Model delivery ({stage.name}): ECS cluster, the apps' services, seeding task, monitoring",
    )
    for key, value in {**stage.tags, "stage": stage.name}.items():
        cdk.Tags.of(app).add(key, value)
    rename_on_replacement(app)  # a replaced producer resource reaches its consumers (stacks/replacement.py)
    return StageStacks(network=network, storage=storage, service=service)


def enable_nag(app: cdk.App) -> None:
    """From here on, synth fails on any cdk-nag AwsSolutions finding neither cured nor acknowledged."""
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
