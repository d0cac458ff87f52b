"""One app of the stage (a block under `apps`): its security group, task definition, app container (the demo
`modelsync serve`, or the team's image), model delivery attached to it (the library's ModelDelivery: the init
container, the view, IAM), the service with its circuit breaker and autoscaling, its way in (stacks/ingress.py)
and its alarms.

Everything here belongs to this app alone, under one construct named after it: adding or removing an app adds or
removes exactly these resources. Pinned versions (models NAME@VERSION) are in the task definition: a deploy is the
model rollout, and the circuit breaker rolls both back.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from constructs import Construct

from model_delivery import (
    AlarmTopic,
    LoadBalancing,
    MetricsOptions,
    ModelDelivery,
    ModelDeliveryAlarms,
    ModelStore,
    TaskNotifier,
)
from model_delivery.bucket_files import BucketFileSystem
from model_delivery.contract import STORE_PATH
from model_delivery.logs import log_group
from model_delivery.modes import MODES, Sources
from model_delivery.policies import ecs_tasks_principal
from model_delivery.tasks import add_modelsync_container, add_scratch, add_task_container, fargate_task_definition
from stacks.images import app_image
from stacks.ingress import AppIngress
from stacks.settings import AppSettings, StageSettings
from stacks.task_groups import task_security_group

APP_CONTAINER = "app"


class AppService(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        app: AppSettings,
        stage: StageSettings,
        cluster: ecs.ICluster,
        store: ModelStore,
        bucket_files: BucketFileSystem | None,
        modelsync_image: ecs.ContainerImage,
        repository: ecr.IRepository,
        subnets: ec2.SubnetSelection,
        topic: AlarmTopic,
        notifier: TaskNotifier,
    ) -> None:
        super().__init__(scope, id)
        mode = MODES[app.delivery_mode]
        vpc = cluster.vpc
        self.models = app.served_models
        sources = Sources(store, bucket_files)
        nfs = mode.nfs_peer(sources) if mode.nfs_peer is not None else None
        self.security_group = task_security_group(
            self,
            "SecurityGroup",
            vpc=vpc,
            who=f"app {app.name}",
            description=f"App {app.name} tasks: HTTPS out (S3, ECR, logs)" + (f", NFS to {nfs[0]}" if nfs else ""),
            nfs=nfs,
        )
        self.log_group = log_group(self, "Logs", stage.log_retention_days, store.log_encryption)
        self.task_role = iam.Role(
            self,
            "TaskRole",
            assumed_by=ecs_tasks_principal(self),
            description=f"App {app.name} ({app.delivery_mode} mode): reads models only",
        )
        self.task_definition = fargate_task_definition(
            self,
            "TaskDefinition",
            cpu=app.cpu,
            memory_mib=app.memory_mib,
            ephemeral_storage_gib=app.ephemeral_storage_gib,
            task_role=self.task_role,
        )
        self.app = self._app_container(app, app_image(self, app, repository, modelsync_image))
        self.delivery = ModelDelivery(
            self,
            "Delivery",
            task_definition=self.task_definition,
            app_container=self.app,
            store=store,
            image=modelsync_image,
            models=app.served_models,
            mode=app.delivery_mode,
            layout=app.layout,
            models_path=app.view_path,
            log_group=self.log_group,
            metrics=MetricsOptions(stage=stage.name, app=app.name),
            verify_every_byte=app.verify_every_byte,
            files_wait_seconds=app.files_wait,
            bucket_files=bucket_files,
        )

        # Before the first seed there is nothing to pull or verify: every task would fail and the first
        # deploy would roll back. start_service=false deploys the service with no tasks (and lets
        # autoscaling go to zero); the next deploy after seeding starts it.
        running = stage.start_service
        self.service = ecs.FargateService(
            self,
            "Service",
            cluster=cluster,
            task_definition=self.task_definition,
            desired_count=app.desired_count if running else 0,
            platform_version=ecs.FargatePlatformVersion.VERSION1_4,
            vpc_subnets=subnets,
            security_groups=[self.security_group],
            assign_public_ip=False,
            circuit_breaker=ecs.DeploymentCircuitBreaker(enable=True, rollback=True),
            min_healthy_percent=100,
            max_healthy_percent=200,
            # Only valid with a load balancer: how long its health checks are ignored while the app starts.
            health_check_grace_period=cdk.Duration.seconds(app.start_seconds) if app.ingress != "none" else None,
        )
        scaling = self.service.auto_scale_task_count(
            min_capacity=app.min_capacity if running else 0, max_capacity=app.max_capacity
        )
        scaling.scale_on_cpu_utilization("CpuTarget", target_utilization_percent=app.target_cpu_percent)

        self.ingress = None
        if app.ingress != "none":
            self.ingress = AppIngress(
                self,
                "Ingress",
                app=app,
                vpc=vpc,
                service=self.service,
                container_name=APP_CONTAINER,
                access_logs=store.access_logs,
                deletion_protection=stage.termination_protection,
            )
        self.alarms = ModelDeliveryAlarms(
            self,
            "Alarms",
            topic=topic,
            notifier=notifier,
            service=self.service,
            delivery=self.delivery,
            load_balancing=(
                LoadBalancing(self.ingress.load_balancer, self.ingress.target_group) if self.ingress else None
            ),
            thresholds=app.alarms.thresholds,
        )

    def _app_container(self, app: AppSettings, image: ecs.ContainerImage) -> ecs.ContainerDefinition:
        if app.demo:
            container = add_modelsync_container(
                self.task_definition,
                APP_CONTAINER,
                image=image,
                command=["modelsync", "serve"],
                log_group=self.log_group,
                stream_prefix="service",
                environment={
                    **app.environment,
                    "MODELSYNC_DEST": STORE_PATH,
                    "MODELSYNC_MODELS": ",".join(app.served_models),
                    "MODELSYNC_PORT": str(app.port),
                    **MODES[app.delivery_mode].store_environment,
                },
                health_check=_health_check(app, ["CMD", "modelsync", "healthcheck"]),
                stop_timeout_seconds=app.stop_timeout_seconds,
            )
        else:  # the team's own image: its own user and command; nothing of modelsync inside it
            container = add_task_container(
                self.task_definition,
                APP_CONTAINER,
                image=image,
                command=list(app.command),
                log_group=self.log_group,
                stream_prefix="service",
                environment=dict(app.environment),
                user=None,
                health_check=_health_check(app, list(app.health_command)) if app.health_command else None,
                stop_timeout_seconds=app.stop_timeout_seconds,
            )
        container.add_port_mappings(ecs.PortMapping(container_port=app.port, protocol=ecs.Protocol.TCP))
        for index, path in enumerate(app.writable_paths):
            add_scratch(container, self.task_definition, f"{APP_CONTAINER}-writable-{index}", path)
        return container


def _health_check(app: AppSettings, command: list[str]) -> ecs.HealthCheck:
    # ECS ignores a Dockerfile HEALTHCHECK: only this one counts. Its start period is at most 300 s.
    return ecs.HealthCheck(
        command=command,
        interval=cdk.Duration.seconds(30),
        timeout=cdk.Duration.seconds(5),
        retries=3,
        start_period=cdk.Duration.seconds(min(app.start_seconds, 300)),
    )
