"""Service stack: ECS cluster, the model service (with the library's ModelDelivery), the
optional load balancer, the library's ModelSeeding (seeding task, seed runner, optional auto-seed), its
monitoring (the library's ModelDeliveryAlarms and ModelDeliveryDashboard), plus the outputs operators,
`tools/seed.py` and `tools/pins.py` read."""

from __future__ import annotations

from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_ecs as ecs
from constructs import Construct

from model_delivery import LoadBalancing, ModelDeliveryAlarms, ModelDeliveryDashboard, ModelSeeding
from model_delivery.seeding import SEED_CONTAINER, SEED_RUNNER_DIR, SEED_STREAM_PREFIX
from stacks.images import CONTAINER_DIR, app_image, modelsync_images
from stacks.ingress import ModelServiceIngress
from stacks.model_service import APP_CONTAINER, ModelService
from stacks.network import NetworkStack
from stacks.settings import Settings
from stacks.storage import StorageStack


class ServiceStack(cdk.Stack):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        settings: Settings,
        network: NetworkStack,
        storage: StorageStack,
        container_dir: Path = CONTAINER_DIR,
        seed_runner_dir: Path = SEED_RUNNER_DIR,
        **kwargs,
    ) -> None:
        super().__init__(scope, id, termination_protection=settings.termination_protection, **kwargs)
        security_groups = network.security_groups
        subnets = ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS)
        private_subnets = network.vpc.select_subnets(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS).subnets

        # The storage stack's repository (it must exist, with an image, before these tasks pull). Imported by
        # name: its URI and ARN are then built from this stack's account and region, not split from the ARN
        # (Fn::Split over Fn::GetStackOutput, which cfn-lint refuses).
        self.repository = ecr.Repository.from_repository_name(self, "Repository", storage.repository.repository_name)
        service_image, seeding_image = modelsync_images(settings, self.repository, container_dir)
        self.cluster = ecs.Cluster(
            self, "Cluster", vpc=network.vpc, container_insights_v2=ecs.ContainerInsights.ENABLED
        )
        store = storage.store
        self.model_service = ModelService(
            self,
            "ModelService",
            settings=settings,
            cluster=self.cluster,
            store=store,
            modelsync_image=service_image,
            app_image=app_image(self, settings, self.repository, service_image),
            subnets=subnets,
            security_group=security_groups.service,
        )
        self.ingress = None
        if security_groups.load_balancer is not None:
            self.ingress = ModelServiceIngress(
                self,
                "Ingress",
                settings=settings,
                vpc=network.vpc,
                security_group=security_groups.load_balancer,
                service=self.model_service.service,
                container_name=APP_CONTAINER,
                access_logs=store.access_logs,
            )
        # "Default": the seeding resources keep the logical ids they had before they became a library.
        self.seeding = ModelSeeding(
            self,
            "Default",
            cluster=self.cluster,
            store=store,
            image=seeding_image,
            subnets=private_subnets,
            security_group=security_groups.seed,
            seed_models=settings.seed_models,
            mirror_pins=settings.pinned_models,
            catalog_names=settings.catalog_names,
            cpu=settings.seed_cpu,
            memory_mib=settings.seed_memory_mib,
            ephemeral_storage_gib=settings.seed_ephemeral_storage_gib,
            log_retention_days=settings.log_retention_days,
            seed_on_deploy=settings.seed_on_deploy,
            fingerprint=settings.seed_fingerprint,
            code_dir=seed_runner_dir,
        )
        self.alarms = ModelDeliveryAlarms(
            self,
            "Alarms",
            store=store,
            service=self.model_service.service,
            delivery=self.model_service.delivery,
            stage=settings.stage,
            seeding=self.seeding,
            email=settings.alarm_email or None,
            load_balancing=(
                LoadBalancing(self.ingress.load_balancer, self.ingress.target_group)
                if self.ingress is not None
                else None
            ),
            thresholds=settings.alarm_thresholds,
            log_retention_days=settings.log_retention_days,
        )
        self.dashboard = ModelDeliveryDashboard(self, "Dashboard", alarms=self.alarms)

        self._outputs(settings, network, storage, private_subnets)

    def _outputs(
        self, settings: Settings, network: NetworkStack, storage: StorageStack, private_subnets: list[ec2.ISubnet]
    ) -> None:
        groups = network.security_groups
        outputs = {
            # Read by tools/seed.py: keys fixed by docs/contracts.md.
            "ClusterName": self.cluster.cluster_name,
            "ServiceName": self.model_service.service.service_name,
            "SeedTaskDefinitionArn": self.seeding.task.task_definition.task_definition_arn,
            "SeedRunnerFunctionName": self.seeding.runner.function.function_name,
            "SeedLogGroupName": self.seeding.task.log_group.log_group_name,
            "SeedContainerName": SEED_CONTAINER,
            "SeedLogStreamPrefix": SEED_STREAM_PREFIX,
            "RepositoryUri": self.repository.repository_uri,
            "ModelsBucketName": storage.store.bucket.bucket_name,
            "FileSystemId": storage.store.require_mirror("the outputs").file_system.file_system_id,
            # For operators.
            "DeliveryMode": settings.delivery_mode,
            "ServiceTaskDefinitionArn": self.model_service.task_definition.task_definition_arn,
            "PrivateSubnetIds": ",".join(subnet.subnet_id for subnet in private_subnets),
            "ServiceSecurityGroupId": groups.service.security_group_id,
            "SeedSecurityGroupId": groups.seed.security_group_id,
            "FileSystemSecurityGroupId": groups.file_system.security_group_id,
            "ModelsAccessPointId": storage.store.require_mirror("the outputs").access_point.access_point_id,
            "AlarmTopicArn": self.alarms.topic.topic_arn,
            # --signing-key for hand publishes, --trust-key for checks (docs/runbook.md).
            "SigningKeyArn": storage.store.signing_key.key_arn,
            "DashboardName": self.dashboard.dashboard.dashboard_name,
        }
        if self.ingress is not None:
            outputs["ServiceUrl"] = self.ingress.url
        for key, value in outputs.items():
            cdk.CfnOutput(self, key, value=value)
