"""What every task and container of model delivery has in common: a Linux/x86-64 Fargate task definition
with the same cdk-nag acknowledgments, the EFS mirror and S3 Files volumes, and containers with a read-only root file
system and a scratch /tmp, CloudWatch logs and an init process. One place so the service, init and
seeding containers cannot drift apart."""

from __future__ import annotations

import aws_cdk as cdk
import jsii
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from constructs import Construct, IConstruct

from model_delivery.contract import IMAGE_USER, SCRATCH_PATH
from model_delivery.errors import ModelDeliveryError
from model_delivery.mirror import ModelMirror
from model_delivery.nag import acknowledge_task_definition

MODELS_VOLUME = "models"
# modelsync ends within a chunk on SIGTERM (modelsync/stop.py); 10 s leaves room for the clean-up.
MODELSYNC_STOP_TIMEOUT_SECONDS = 10
STOP_TIMEOUT_RANGE = (2, 120)  # seconds between SIGTERM and SIGKILL; Fargate's maximum stopTimeout is 120
FARGATE_DEFAULT_EPHEMERAL_GIB = 20  # what a task gets when the template sets nothing
EPHEMERAL_RANGE_GIB = (21, 200)  # what Fargate accepts when set explicitly


# Fargate CPU units -> allowed memory (MiB): (lowest, highest, step).
FARGATE_MEMORY = {
    256: (512, 2048, None),  # 512, 1024 or 2048 only
    512: (1024, 4096, 1024),
    1024: (2048, 8192, 1024),
    2048: (4096, 16384, 1024),
    4096: (8192, 30720, 1024),
    8192: (16384, 61440, 4096),
    16384: (32768, 122880, 8192),
}


def fargate_size_problem(cpu: int, memory: int, cpu_label: str = "cpu") -> str | None:
    """Why (cpu, memory) is no Fargate task size, as 'use ...' text (None when it is one)."""
    if cpu not in FARGATE_MEMORY:
        return f"a Fargate CPU value: {', '.join(map(str, FARGATE_MEMORY))}"
    low, high, step = FARGATE_MEMORY[cpu]
    if step is None:
        return None if memory in (512, 1024, 2048) else f"512, 1024 or 2048 MiB with {cpu_label} {cpu}"
    if low <= memory <= high and (memory - low) % step == 0:
        return None
    return f"{low} to {high} MiB in steps of {step} with {cpu_label} {cpu}"


def check_fargate_size(cpu_where: str, memory_where: str, cpu: int, memory: int) -> None:
    problem = fargate_size_problem(cpu, memory, cpu_where)
    if problem:
        bad = cpu_where if cpu not in FARGATE_MEMORY else memory_where
        raise ModelDeliveryError(
            f"{bad} = {cpu if bad == cpu_where else memory} is not allowed: use {problem} (Fargate combinations)"
        )


def check_ephemeral_storage(where: str, gib: int) -> None:
    if gib != FARGATE_DEFAULT_EPHEMERAL_GIB and not EPHEMERAL_RANGE_GIB[0] <= gib <= EPHEMERAL_RANGE_GIB[1]:
        raise ModelDeliveryError(
            f"{where} = {gib!r} is not allowed: use 20 (the Fargate default) or "
            f"{EPHEMERAL_RANGE_GIB[0]} to {EPHEMERAL_RANGE_GIB[1]} GiB"
        )


def check_stop_timeout(where: str, seconds: int) -> None:
    low, high = STOP_TIMEOUT_RANGE
    if not isinstance(seconds, int) or isinstance(seconds, bool) or not low <= seconds <= high:
        raise ModelDeliveryError(
            f"{where} = {seconds!r} is not allowed: use {low} to {high} seconds (Fargate's limit) between "
            "SIGTERM and SIGKILL"
        )


def ephemeral_storage(gib: int) -> int | None:
    """Fargate takes 21-200 GiB when set; the 20 GiB default is expressed by not setting it."""
    return None if gib == FARGATE_DEFAULT_EPHEMERAL_GIB else gib


def fargate_task_definition(
    scope: Construct, id: str, *, cpu: int, memory_mib: int, ephemeral_storage_gib: int, task_role: iam.IRole
) -> ecs.FargateTaskDefinition:
    task_definition = ecs.FargateTaskDefinition(
        scope,
        id,
        cpu=cpu,
        memory_limit_mib=memory_mib,
        ephemeral_storage_gib=ephemeral_storage(ephemeral_storage_gib),
        task_role=task_role,
        runtime_platform=ecs.RuntimePlatform(
            operating_system_family=ecs.OperatingSystemFamily.LINUX, cpu_architecture=ecs.CpuArchitecture.X86_64
        ),
    )
    acknowledge_task_definition(task_definition)
    return task_definition


def add_efs_volume(task_definition: ecs.TaskDefinition, mirror: ModelMirror) -> None:
    """The mirror's access point with TLS and IAM authorization (both required with an access point)."""
    task_definition.add_volume(
        name=MODELS_VOLUME,
        efs_volume_configuration=ecs.EfsVolumeConfiguration(
            file_system_id=mirror.file_system.file_system_id,
            transit_encryption="ENABLED",
            authorization_config=ecs.AuthorizationConfig(
                access_point_id=mirror.access_point.access_point_id, iam="ENABLED"
            ),
        ),
    )


def add_bucket_files_volume(task_definition: ecs.TaskDefinition, file_system_arn: str) -> None:
    """The bucket's S3 Files file system at its root (the models/ prefix). aws-cdk-lib's Volume has no S3 Files
    option: the volume is added as a task-local one and given its S3FilesVolumeConfiguration in the template
    (an L1 override; ECS then mounts it with TLS, as S3 Files requires)."""
    task_definition.add_volume(name=MODELS_VOLUME)
    cdk.Aspects.of(task_definition).add(_S3FilesVolume(MODELS_VOLUME, file_system_arn))


@jsii.implements(cdk.IAspect)
class _S3FilesVolume:
    """Finds the volume by name once every volume is added (the template lists them in the order they were)."""

    def __init__(self, name: str, file_system_arn: str) -> None:
        self.name, self.file_system_arn = name, file_system_arn

    def visit(self, node: IConstruct) -> None:
        if not isinstance(node, ecs.CfnTaskDefinition):
            return
        volumes = cdk.Stack.of(node).resolve(node.volumes) or []
        index = next(i for i, volume in enumerate(volumes) if volume.get("name", volume.get("Name")) == self.name)
        node.add_property_override(
            f"Volumes.{index}.S3FilesVolumeConfiguration", {"FileSystemArn": self.file_system_arn}
        )


def scratch_volume(task_definition: ecs.TaskDefinition, name: str) -> str:
    """A task-local volume (Fargate ephemeral storage) for one writable path."""
    task_definition.add_volume(name=name)
    return name


def add_task_container(
    task_definition: ecs.TaskDefinition,
    name: str,
    *,
    image: ecs.ContainerImage,
    command: list[str] | None,
    log_group: logs.ILogGroup,
    stream_prefix: str,
    environment: dict[str, str],
    user: str | None,
    essential: bool = True,
    health_check: ecs.HealthCheck | None = None,
    stop_timeout_seconds: int = MODELSYNC_STOP_TIMEOUT_SECONDS,
) -> ecs.ContainerDefinition:
    """Any container of ours: read-only root file system with a scratch /tmp, CloudWatch logs, and an init
    process (PID 1 that forwards ECS's SIGTERM and reaps children; Python as PID 1 ignores SIGTERM)."""
    container = task_definition.add_container(
        name,
        container_name=name,
        image=image,
        command=command or None,
        essential=essential,
        user=user,
        readonly_root_filesystem=True,
        environment=environment,
        logging=ecs.LogDrivers.aws_logs(stream_prefix=stream_prefix, log_group=log_group),
        health_check=health_check,
        linux_parameters=ecs.LinuxParameters(task_definition, f"{name}-linux", init_process_enabled=True),
        stop_timeout=cdk.Duration.seconds(stop_timeout_seconds),
    )
    add_scratch(container, task_definition, f"{name}-tmp", SCRATCH_PATH)
    return container


def add_modelsync_container(task_definition: ecs.TaskDefinition, name: str, **kwargs) -> ecs.ContainerDefinition:
    """A container on the modelsync image, as its non-root image user."""
    return add_task_container(task_definition, name, user=IMAGE_USER, **kwargs)


def add_scratch(
    container: ecs.ContainerDefinition, task_definition: ecs.TaskDefinition, volume: str, path: str
) -> None:
    """A writable task-local volume at path (the root file system stays read-only)."""
    container.add_mount_points(
        ecs.MountPoint(source_volume=scratch_volume(task_definition, volume), container_path=path, read_only=False)
    )


def family_arn_prefix(scope: Construct, task_definition: ecs.TaskDefinition) -> str:
    """arn:...:task-definition/FAMILY: (every revision of the family, none of another family), for event patterns."""
    return cdk.Stack.of(scope).format_arn(
        service="ecs", resource="task-definition", resource_name=f"{task_definition.family}:"
    )
