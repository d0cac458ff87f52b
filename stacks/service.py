"""Service stack: the ECS cluster, every app of the stage (stacks/app_service.py, one construct each), the one
seeding task with its runner (and the optional auto-seed), the stage's alarm topic, task notifier, shared alarms
and dashboard, plus the outputs operators, `tools/seed.py` and `tools/pins.py` read."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_ecs as ecs
from constructs import Construct

from model_delivery import (
    AlarmTopic,
    MetricsOptions,
    ModelDeliveryDashboard,
    ModelSeeding,
    ModelStore,
    ModelStoreAlarms,
    TaskNotifier,
)
from model_delivery.bucket_files import BucketFileSystem
from model_delivery.modes import MODES
from model_delivery.notifier import NOTIFIER_CONCURRENCY
from model_delivery.seeding import SEED_CONTAINER, SEED_RUNNER_CONCURRENCY, SEED_RUNNER_DIR, SEED_STREAM_PREFIX
from model_delivery.signing_task import SIGN_CONTAINER, SIGN_STREAM_PREFIX
from stacks.app_service import AppService
from stacks.images import CONTAINER_DIR, modelsync_images
from stacks.naming import app_id, app_output
from stacks.settings import (
    AppSettings,
    ImageSettings,
    MonitoringSettings,
    SeedingSettings,
    StageSettings,
)
from stacks.task_groups import task_security_group


class ServiceStack(cdk.Stack):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        stage: StageSettings,
        apps: Mapping[str, AppSettings],
        image: ImageSettings,
        seeding: SeedingSettings,
        seeded_models: tuple[str, ...],
        mirror_pins: tuple[str, ...],
        catalog_names: tuple[str, ...],
        seed_fingerprint: str,
        monitoring: MonitoringSettings,
        vpc: ec2.IVpc,
        file_system_security_group: ec2.ISecurityGroup,
        store: ModelStore,
        repository: ecr.IRepository,
        container_dir: Path = CONTAINER_DIR,
        seed_runner_dir: Path = SEED_RUNNER_DIR,
        **kwargs,
    ) -> None:
        super().__init__(scope, id, termination_protection=stage.termination_protection, **kwargs)
        subnets = ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS)
        private_subnets = vpc.select_subnets(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS).subnets
        stage_metrics = MetricsOptions(stage=stage.name)

        # The storage stack's repository (it must exist, with an image, before these tasks pull). Imported by
        # name: its URI and ARN are then built from this stack's account and region, not split from the ARN
        # (Fn::Split over Fn::GetStackOutput, which cfn-lint refuses).
        self.repository = ecr.Repository.from_repository_name(self, "Repository", repository.repository_name)
        service_image, seeding_image = modelsync_images(image, self.repository, container_dir)
        self.cluster = ecs.Cluster(self, "Cluster", vpc=vpc, container_insights_v2=ecs.ContainerInsights.ENABLED)

        self.seed_security_group = task_security_group(
            self,
            "SeedSecurityGroup",
            vpc=vpc,
            who="the seeding tasks",
            description="Seeding and signing tasks: HTTPS out (Zenodo, PaddleOCR sources, S3, KMS), NFS to EFS",
            nfs=("the model mirror", file_system_security_group),
        )
        # The seeding task stages the union of every app's models (and seed_models); the signing task signs them
        # and mirrors them. "Default" is CDK's hidden id: the parts keep the logical ids they had.
        self.seeding = ModelSeeding(
            self,
            "Default",
            cluster=self.cluster,
            store=store,
            image=seeding_image,
            signing_image=service_image,
            subnets=private_subnets,
            security_group=self.seed_security_group,
            seed_models=seeded_models,
            mirror_pins=mirror_pins,
            catalog_names=catalog_names,
            cpu=seeding.seed_cpu,
            memory_mib=seeding.seed_memory_mib,
            ephemeral_storage_gib=seeding.seed_ephemeral_storage_gib,
            log_retention_days=stage.log_retention_days,
            seed_on_deploy=seeding.seed_on_deploy,
            fingerprint=seed_fingerprint,
            code_dir=seed_runner_dir,
            metrics=stage_metrics,
            runner_concurrency=SEED_RUNNER_CONCURRENCY if stage.lambda_reserved_concurrency else None,
        )
        self.seeding_task, self.seed_runner = self.seeding.task, self.seeding.runner

        self.topic = AlarmTopic(self, "Alarms", store=store, stage=stage.name, email=monitoring.alarm_email or None)
        self.notifier = TaskNotifier(
            self,
            "Notifier",
            cluster=self.cluster,
            topic=self.topic,
            encryption=store.log_encryption,
            metrics=stage_metrics,
            seeding=self.seeding,
            log_retention_days=stage.log_retention_days,
            reserved_concurrency=NOTIFIER_CONCURRENCY if stage.lambda_reserved_concurrency else None,
        )
        # The bucket as a file system exists while an app mounts it (mode s3files), beside those apps: adding or
        # removing it is one update of this stack.
        self.bucket_files = (
            BucketFileSystem(
                self, "BucketFiles", vpc=vpc, bucket=store.bucket, key=store.key, role=store.bucket_files_role
            )
            if any(MODES[app.delivery_mode].uses_bucket_files for app in apps.values())
            else None
        )
        self.apps = {
            name: AppService(
                self,
                app_id(name),
                app=app,
                stage=stage,
                cluster=self.cluster,
                store=store,
                bucket_files=self.bucket_files,
                modelsync_image=service_image,
                repository=self.repository,
                subnets=subnets,
                topic=self.topic,
                notifier=self.notifier,
            )
            for name, app in apps.items()
        }
        reads_mirror = any(service.delivery.delivery_mode.uses_mirror for service in self.apps.values())
        self.store_alarms = ModelStoreAlarms(
            self,
            "SharedAlarms",
            topic=self.topic,
            store=store,
            notifier=self.notifier,
            metrics=stage_metrics,
            seed_runner=self.seed_runner,
            watch_mirror=reads_mirror,
            thresholds=monitoring.mirror_thresholds,
        )
        self.dashboard = ModelDeliveryDashboard(
            self,
            "Dashboard",
            store_alarms=self.store_alarms,
            app_alarms=[service.alarms for service in self.apps.values()],
        )
        self._outputs(store, file_system_security_group, private_subnets)

    def _outputs(
        self, store: ModelStore, file_system_security_group: ec2.ISecurityGroup, private_subnets: list[ec2.ISubnet]
    ) -> None:
        mirror = store.require_mirror("the outputs")
        outputs = {
            # Read by tools/seed.py and tools/pins.py: keys fixed by docs/contracts.md.
            "ClusterName": self.cluster.cluster_name,
            "Apps": ",".join(self.apps),
            "SeedTaskDefinitionArn": self.seeding_task.task_definition.task_definition_arn,
            "SeedRunnerFunctionName": self.seed_runner.function.function_name,
            "SeedLogGroupName": self.seeding_task.log_group.log_group_name,
            "SeedContainerName": SEED_CONTAINER,
            "SeedLogStreamPrefix": SEED_STREAM_PREFIX,
            "SignTaskDefinitionArn": self.seeding.signing.task_definition.task_definition_arn,
            "SignLogGroupName": self.seeding.signing.log_group.log_group_name,
            "SignContainerName": SIGN_CONTAINER,
            "SignLogStreamPrefix": SIGN_STREAM_PREFIX,
            "RepositoryUri": self.repository.repository_uri,
            "ModelsBucketName": store.bucket.bucket_name,
            "FileSystemId": mirror.file_system.file_system_id,
            # For operators.
            "PrivateSubnetIds": ",".join(subnet.subnet_id for subnet in private_subnets),
            "SeedSecurityGroupId": self.seed_security_group.security_group_id,
            "FileSystemSecurityGroupId": file_system_security_group.security_group_id,
            "ModelsAccessPointId": mirror.access_point.access_point_id,
            **({"BucketFileSystemArn": self.bucket_files.file_system_arn} if self.bucket_files is not None else {}),
            "AlarmTopicArn": self.topic.topic.topic_arn,
            # --signing-key for hand publishes, --trust-key for checks (docs/runbook.md).
            "SigningKeyArn": store.signing_key.key_arn,
            "DashboardName": self.dashboard.dashboard.dashboard_name,
        }
        for name, service in self.apps.items():
            outputs[app_output(name, "ServiceName")] = service.service.service_name
            outputs[app_output(name, "DeliveryMode")] = service.delivery.mode
            # make seed APP=NAME seeds these (tools/seed.py --app).
            outputs[app_output(name, "Models")] = ",".join(spec.partition("@")[0] for spec in service.models)
            outputs[app_output(name, "TaskDefinitionArn")] = service.task_definition.task_definition_arn
            outputs[app_output(name, "SecurityGroupId")] = service.security_group.security_group_id
            if service.ingress is not None:
                outputs[app_output(name, "Url")] = service.ingress.url
        for key, value in outputs.items():
            cdk.CfnOutput(self, key, value=value)
