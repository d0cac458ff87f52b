"""Service stack: ECR repository, ECS cluster, the model service, the seeding task, the seed runner
and (optionally) the auto-seed, plus the outputs operators and `tools/seed.py` read."""

from __future__ import annotations

from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_ecs as ecs
from constructs import Construct

from stacks.containers import CONTAINER_DIR, app_image, images
from stacks.ingress import ModelServiceIngress
from stacks.model_service import APP_CONTAINER, ModelService
from stacks.network import NetworkStack
from stacks.seeding import SEED_CONTAINER, SEED_RUNNER_DIR, SEED_STREAM_PREFIX, AutoSeed, SeedingTask, SeedRunner
from stacks.settings import Settings
from stacks.storage import StorageStack, stateful_removal_policy


class ServiceStack(cdk.Stack):
    def __init__(self, scope: Construct, id: str, *, settings: Settings, network: NetworkStack,
                 storage: StorageStack, container_dir: Path = CONTAINER_DIR,
                 seed_runner_dir: Path = SEED_RUNNER_DIR, **kwargs) -> None:
        super().__init__(scope, id, termination_protection=settings.termination_protection, **kwargs)
        removal_policy = stateful_removal_policy(settings)
        security_groups = network.security_groups
        subnets = ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS)
        private_subnets = network.vpc.select_subnets(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS).subnets

        self.repository = ecr.Repository(
            self, "Repository",
            image_tag_mutability=ecr.TagMutability.IMMUTABLE,
            image_scan_on_push=True,
            lifecycle_rules=[ecr.LifecycleRule(description=f"keep the last {settings.ecr_max_image_count} images",
                                               max_image_count=settings.ecr_max_image_count)],
            removal_policy=removal_policy,
        )
        service_image, seeding_image = images(settings, self.repository, container_dir)
        self.cluster = ecs.Cluster(self, "Cluster", vpc=network.vpc,
                                   container_insights_v2=ecs.ContainerInsights.ENABLED)
        self.model_service = ModelService(self, "ModelService", settings=settings, cluster=self.cluster,
                                          storage=storage, modelsync_image=service_image,
                                          app_image=app_image(self, settings, self.repository, service_image),
                                          subnets=subnets, security_group=security_groups.service)
        self.ingress = None
        if security_groups.load_balancer is not None:
            self.ingress = ModelServiceIngress(self, "Ingress", settings=settings, vpc=network.vpc,
                                               security_group=security_groups.load_balancer,
                                               service=self.model_service.service, container_name=APP_CONTAINER,
                                               access_logs=storage.models.access_logs)
        self.seeding = SeedingTask(self, "Seeding", settings=settings, storage=storage, image=seeding_image)
        self.seed_runner = SeedRunner(self, "SeedRunner", settings=settings, cluster=self.cluster,
                                      seeding=self.seeding, subnets=private_subnets,
                                      security_group=security_groups.seed, code_dir=seed_runner_dir)
        if settings.seed_on_deploy:
            auto_seed = AutoSeed(self, "AutoSeed", settings=settings, runner=self.seed_runner)
            # The first invoke can start the task during this very deploy: its task role (EFS mount and
            # write, models/ write) and execution role (image pull, logs) must exist with their policies.
            auto_seed.node.add_dependency(self.seeding.task_role,
                                          self.seeding.task_definition.obtain_execution_role())

        self._outputs(settings, network, storage, private_subnets)

    def _outputs(self, settings: Settings, network: NetworkStack, storage: StorageStack,
                 private_subnets: list[ec2.ISubnet]) -> None:
        groups = network.security_groups
        outputs = {
            # Read by tools/seed.py: keys fixed by docs/contracts.md.
            "ClusterName": self.cluster.cluster_name,
            "ServiceName": self.model_service.service.service_name,
            "SeedTaskDefinitionArn": self.seeding.task_definition.task_definition_arn,
            "SeedRunnerFunctionName": self.seed_runner.function.function_name,
            "SeedLogGroupName": self.seeding.log_group.log_group_name,
            "SeedContainerName": SEED_CONTAINER,
            "SeedLogStreamPrefix": SEED_STREAM_PREFIX,
            "RepositoryUri": self.repository.repository_uri,
            "ModelsBucketName": storage.models.bucket.bucket_name,
            "FileSystemId": storage.mirror.file_system.file_system_id,
            # For operators.
            "DeliveryMode": settings.delivery_mode,
            "ServiceTaskDefinitionArn": self.model_service.task_definition.task_definition_arn,
            "PrivateSubnetIds": ",".join(subnet.subnet_id for subnet in private_subnets),
            "ServiceSecurityGroupId": groups.service.security_group_id,
            "SeedSecurityGroupId": groups.seed.security_group_id,
            "FileSystemSecurityGroupId": groups.file_system.security_group_id,
            "ModelsAccessPointId": storage.mirror.access_point.access_point_id,
        }
        if self.ingress is not None:
            outputs["ServiceUrl"] = self.ingress.url
        for key, value in outputs.items():
            cdk.CfnOutput(self, key, value=value)
