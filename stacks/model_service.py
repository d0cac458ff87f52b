"""The Fargate model service of this app: the task definition, the app container (the demo `modelsync
serve`, or any image: settings app_*), model delivery attached to it (the library's ModelDelivery: the
init container, the view, IAM), and the service with its circuit breaker and autoscaling.

s3:  init `modelsync pull` fills the task-local store at /models from the bucket;
efs: the store is the EFS mirror's access point, mounted read-only; init `modelsync verify` checks it.
Pinned versions (service_models NAME@VERSION) are in the task definition: a deploy is the model rollout,
and the circuit breaker rolls both back.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from constructs import Construct

from model_delivery import ModelDelivery, ModelStore
from model_delivery.contract import STORE_PATH
from model_delivery.logs import log_group
from model_delivery.policies import ecs_tasks_principal
from model_delivery.tasks import add_modelsync_container, add_scratch, add_task_container, fargate_task_definition
from stacks.app_layout import app_layout
from stacks.settings import Settings

APP_CONTAINER = "app"


class ModelService(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        settings: Settings,
        cluster: ecs.ICluster,
        store: ModelStore,
        modelsync_image: ecs.ContainerImage,
        app_image: ecs.ContainerImage,
        subnets: ec2.SubnetSelection,
        security_group: ec2.ISecurityGroup,
    ) -> None:
        super().__init__(scope, id)
        app_layout(settings)  # one-line settings errors before the library's checks
        self.log_group = log_group(self, "Logs", settings.log_retention_days, store.log_encryption)
        self.task_role = iam.Role(
            self,
            "TaskRole",
            assumed_by=ecs_tasks_principal(self),
            description=f"Model service ({settings.delivery_mode} mode): reads models only",
        )
        self.task_definition = fargate_task_definition(
            self,
            "TaskDefinition",
            cpu=settings.service_cpu,
            memory_mib=settings.service_memory_mib,
            ephemeral_storage_gib=settings.ephemeral_storage_gib,
            task_role=self.task_role,
        )
        self.app = self._app_container(settings, app_image)
        self.delivery = ModelDelivery(
            self,
            "Delivery",
            task_definition=self.task_definition,
            app_container=self.app,
            store=store,
            image=modelsync_image,
            models=settings.served_models,
            mode=settings.delivery_mode,
            layout=settings.app_layout,
            models_path=settings.app_models_path,
            log_group=self.log_group,
        )
        self.init = self.delivery.init

        # Before the first seed there is nothing to pull or verify: every task would fail and the first
        # deploy would roll back. start_service=false deploys the service with no tasks (and lets
        # autoscaling go to zero); the next deploy after seeding starts it.
        running = settings.start_service
        self.service = ecs.FargateService(
            self,
            "Service",
            cluster=cluster,
            task_definition=self.task_definition,
            desired_count=settings.desired_count if running else 0,
            platform_version=ecs.FargatePlatformVersion.VERSION1_4,
            vpc_subnets=subnets,
            security_groups=[security_group],
            assign_public_ip=False,
            circuit_breaker=ecs.DeploymentCircuitBreaker(enable=True, rollback=True),
            min_healthy_percent=100,
            max_healthy_percent=200,
            # Only valid with a load balancer: how long its health checks are ignored while the app starts.
            health_check_grace_period=(
                cdk.Duration.seconds(settings.app_start_seconds) if settings.ingress != "none" else None
            ),
        )
        scaling = self.service.auto_scale_task_count(
            min_capacity=settings.min_capacity if running else 0, max_capacity=settings.max_capacity
        )
        scaling.scale_on_cpu_utilization("CpuTarget", target_utilization_percent=settings.target_cpu_percent)

    def _app_container(self, settings: Settings, image: ecs.ContainerImage) -> ecs.ContainerDefinition:
        if settings.demo_app:
            app = add_modelsync_container(
                self.task_definition,
                APP_CONTAINER,
                image=image,
                command=["modelsync", "serve"],
                log_group=self.log_group,
                stream_prefix="service",
                environment={
                    **settings.app_environment,
                    "MODELSYNC_DEST": STORE_PATH,
                    "MODELSYNC_MODELS": ",".join(settings.served_models),
                    "MODELSYNC_PORT": str(settings.app_port),
                },
                health_check=_health_check(settings, ["CMD", "modelsync", "healthcheck"]),
                stop_timeout_seconds=settings.app_stop_timeout_seconds,
            )
        else:  # the team's own image: its own user and command; nothing of modelsync inside it
            app = add_task_container(
                self.task_definition,
                APP_CONTAINER,
                image=image,
                command=list(settings.app_command),
                log_group=self.log_group,
                stream_prefix="service",
                environment=dict(settings.app_environment),
                user=None,
                health_check=(
                    _health_check(settings, list(settings.app_health_command)) if settings.app_health_command else None
                ),
                stop_timeout_seconds=settings.app_stop_timeout_seconds,
            )
        app.add_port_mappings(ecs.PortMapping(container_port=settings.app_port, protocol=ecs.Protocol.TCP))
        for index, path in enumerate(settings.app_writable_paths):
            add_scratch(app, self.task_definition, f"{APP_CONTAINER}-writable-{index}", path)
        return app


def _health_check(settings: Settings, command: list[str]) -> ecs.HealthCheck:
    # ECS ignores a Dockerfile HEALTHCHECK: only this one counts. Its start period is at most 300 s.
    return ecs.HealthCheck(
        command=command,
        interval=cdk.Duration.seconds(30),
        timeout=cdk.Duration.seconds(5),
        retries=3,
        start_period=cdk.Duration.seconds(min(settings.app_start_seconds, 300)),
    )
