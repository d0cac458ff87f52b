"""Builds the three stacks of one stage into an App (used by app.py and by the tests), and, when the stage enables
deploy_access, the deploy-access stack in a nested stage of its own (outside `cdk deploy --all`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_logs as logs
from cdk_nag import AwsSolutionsChecks

from model_delivery.seeding import SEED_RUNNER_DIR
from stacks.deploy_access import DEPLOY_ACCESS, DeployAccessStack, stage_targets
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
    deploy_access: DeployAccessStack | None = None  # only with the setting deploy_access

    @property
    def stacks(self) -> tuple[cdk.Stack, ...]:
        """The stage's three stacks, the ones `cdk deploy --all` deploys."""
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
    deploy_access = None
    if settings.deploy_access.deploy_access:
        name = stack_id(stage.name, DEPLOY_ACCESS)
        seed_logs = [_log_group_name(g) for g in (service.seeding.task.log_group, service.seeding.signing.log_group)]
        deploy_access = DeployAccessStack(
            cdk.Stage(app, DEPLOY_ACCESS),  # a nested assembly: `cdk deploy --all` selects top-level stacks only
            name,
            stack_name=name,
            stage=stage,
            access=settings.deploy_access,
            # The groups' names are set by the service stack (strings, not references to it).
            targets=stage_targets(settings.apps.values(), seed_logs, settings.network.vpc_id),
            env=env,
            description=f"Model delivery ({stage.name}): GitHub OIDC provider and the roles deploy.yml assumes",
        )
    for key, value in {**stage.tags, "stage": stage.name}.items():
        cdk.Tags.of(app).add(key, value)
        if deploy_access is not None:  # aspects do not cross into a nested stage
            cdk.Tags.of(deploy_access).add(key, value)
    rename_on_replacement(app)  # a replaced producer resource reaches its consumers (stacks/replacement.py)
    return StageStacks(network=network, storage=storage, service=service, deploy_access=deploy_access)


def _log_group_name(group: logs.ILogGroup) -> str:
    name = group.node.default_child.log_group_name  # type: ignore[union-attr]
    assert isinstance(name, str) and not cdk.Token.is_unresolved(name), name
    return name


def enable_nag(app: cdk.App) -> None:
    """From here on, synth fails on any cdk-nag AwsSolutions finding neither cured nor acknowledged."""
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
