"""The Fargate model service in either delivery mode.

s3:  init container `modelsync pull` fills a task-local volume at /models; the app starts only
     after it exited 0 (dependsOn SUCCESS) and mounts the volume read-only.
efs: the app mounts the mirror's access point read-only at /models; an init container
     `modelsync verify` first checks the mirror is complete (it fails clearly if never seeded).
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from constructs import Construct

from stacks.containers import (MODELS_PATH, MODELS_VOLUME, add_efs_volume, add_modelsync_container,
                               fargate_task_definition)
from stacks.log_groups import log_group
from stacks.policies import MODELS_PREFIX, ecs_tasks_principal, mirror_access
from stacks.settings import Settings
from stacks.storage import StorageStack

APP_CONTAINER = "app"
APP_PORT = 8080
# PaddleX writes temp/, locks/ and func_ret/ under its cache home at import, so the app's cache home is
# a writable task-local volume; the init container links its official_models to the read-only
# /models/paddleocr/official_models (modelsync --paddlex-cache, see container/modelsync/paddlex_cache.py).
PADDLEX_CACHE_VOLUME = "paddlex-cache"
PADDLEX_CACHE_PATH = "/var/cache/paddlex"


class ModelService(Construct):
    def __init__(self, scope: Construct, id: str, *, settings: Settings, cluster: ecs.ICluster,
                 storage: StorageStack, image: ecs.ContainerImage, subnets: ec2.SubnetSelection,
                 security_group: ec2.ISecurityGroup) -> None:
        super().__init__(scope, id)
        self.log_group = log_group(self, "Logs", settings)
        self.task_role = iam.Role(self, "TaskRole", assumed_by=ecs_tasks_principal(self),
                                  description=f"Model service ({settings.delivery_mode} mode): reads models only")
        self.task_definition = fargate_task_definition(
            self, "TaskDefinition", cpu=settings.service_cpu, memory_mib=settings.service_memory_mib,
            ephemeral_storage_gib=settings.ephemeral_storage_gib, task_role=self.task_role)
        models_env = {"MODELSYNC_DEST": MODELS_PATH, "MODELSYNC_MODELS": ",".join(settings.served_models)}
        init_env = {**models_env, "MODELSYNC_PADDLEX_CACHE": PADDLEX_CACHE_PATH}
        self.app = add_modelsync_container(
            self.task_definition, APP_CONTAINER, image=image, command=["modelsync", "serve"],
            log_group=self.log_group, stream_prefix="service",
            environment={**models_env, "MODELSYNC_PORT": str(APP_PORT),
                         "PADDLE_PDX_CACHE_HOME": PADDLEX_CACHE_PATH},
            health_check=ecs.HealthCheck(command=["CMD", "modelsync", "healthcheck"],
                                         interval=cdk.Duration.seconds(30), timeout=cdk.Duration.seconds(5),
                                         retries=3, start_period=cdk.Duration.seconds(60)))
        self.app.add_port_mappings(ecs.PortMapping(container_port=APP_PORT, protocol=ecs.Protocol.TCP))

        if settings.delivery_mode == "s3":
            self.task_definition.add_volume(name=MODELS_VOLUME)
            self.init = add_modelsync_container(
                self.task_definition, "model-pull", image=image, command=["modelsync", "pull"],
                log_group=self.log_group, stream_prefix="service", essential=False,
                environment={**init_env, "MODELSYNC_BUCKET": storage.models.bucket.bucket_name,
                             "MODELSYNC_PREFIX": MODELS_PREFIX,
                             # The task volume dies with the task: no fsync per file (docs/runtime.md).
                             "MODELSYNC_DURABLE": "0"})
            self.init.add_mount_points(ecs.MountPoint(source_volume=MODELS_VOLUME, container_path=MODELS_PATH,
                                                      read_only=False))
            self.task_role.add_managed_policy(storage.models_read_policy)
        else:
            add_efs_volume(self.task_definition, storage.mirror)
            self.init = add_modelsync_container(
                self.task_definition, "model-verify", image=image, command=["modelsync", "verify"],
                log_group=self.log_group, stream_prefix="service", essential=False, environment=init_env)
            self.init.add_mount_points(ecs.MountPoint(source_volume=MODELS_VOLUME, container_path=MODELS_PATH,
                                                      read_only=True))
            self.task_role.add_to_policy(mirror_access(storage.mirror.file_system, storage.mirror.access_point,
                                                       write=False))
        self.app.add_mount_points(ecs.MountPoint(source_volume=MODELS_VOLUME, container_path=MODELS_PATH,
                                                 read_only=True))
        self.task_definition.add_volume(name=PADDLEX_CACHE_VOLUME)
        for container in (self.init, self.app):
            container.add_mount_points(ecs.MountPoint(source_volume=PADDLEX_CACHE_VOLUME,
                                                      container_path=PADDLEX_CACHE_PATH, read_only=False))
        self.app.add_container_dependencies(ecs.ContainerDependency(
            container=self.init, condition=ecs.ContainerDependencyCondition.SUCCESS))

        # Before the first seed there is nothing to pull or verify: every task would fail and the first
        # deploy would roll back. start_service=false deploys the service with no tasks (and lets
        # autoscaling go to zero); the next deploy after seeding starts it.
        running = settings.start_service
        self.service = ecs.FargateService(
            self, "Service",
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
        )
        scaling = self.service.auto_scale_task_count(min_capacity=settings.min_capacity if running else 0,
                                                     max_capacity=settings.max_capacity)
        scaling.scale_on_cpu_utilization("CpuTarget", target_utilization_percent=settings.target_cpu_percent)
