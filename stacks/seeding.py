"""The one-shot seeding task, the seed-runner Lambda that starts it, and the optional auto-seed.

No native CloudFormation resource runs a one-shot task, and a long download from Zenodo inside the
stack lifecycle would roll a deploy back on a flaky source. So seeding is started out of band: by
the operator (`make seed` invokes the seed runner), or, with `seed_on_deploy`, by a custom resource
that invokes the seed runner asynchronously (fire and forget) whenever the catalog or the seed
selection changed. Being asynchronous, it is not ordered before the service update: a model must be
seeded before a deploy makes the service load it (docs/infrastructure.md, "Adding a model").
"""

from __future__ import annotations

from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import custom_resources as cr
from constructs import Construct

from stacks.containers import MODELS_VOLUME, add_efs_volume, add_modelsync_container, fargate_task_definition
from stacks.errors import SettingsError
from stacks.log_groups import log_group
from stacks.nag import acknowledge_wildcard_resource
from stacks.policies import MODELS_PREFIX, ecs_tasks_principal, mirror_access
from stacks.settings import Settings
from stacks.storage import StorageStack

SEED_CONTAINER = "seed"
SEED_STREAM_PREFIX = "seed"  # stream: seed/seed/<task id> (docs/contracts.md)
SEED_EFS_ROOT = "/mnt/models"
# The root file system is read-only and the image's HOME is not writable: anything that caches under ~
# (huggingface_hub for PaddleX's downloads, pip-style ~/.cache users) must land on the scratch /tmp.
SEED_HOME = "/tmp/home"
WRITABLE_HOME = {"HOME": SEED_HOME, "XDG_CACHE_HOME": f"{SEED_HOME}/.cache",
                 "HF_HOME": f"{SEED_HOME}/.cache/huggingface"}
SEED_RUNNER_DIR = Path(__file__).resolve().parent.parent / "lambdas" / "seed_runner"
AUTO_SEED_ID_CHARS = 16  # of the seed fingerprint, in the auto-seed resource's construct id
LAMBDA_RUNTIME = lambda_.Runtime.PYTHON_3_14  # the newest Python runtime aws-cdk-lib 2.275 knows


class SeedingTask(Construct):
    def __init__(self, scope: Construct, id: str, *, settings: Settings, storage: StorageStack,
                 image: ecs.ContainerImage) -> None:
        super().__init__(scope, id)
        self.log_group = log_group(self, "Logs", settings)
        self.task_role = iam.Role(self, "TaskRole", assumed_by=ecs_tasks_principal(self),
                                  description="Seeding task: writes the models prefix and the EFS mirror")
        self.task_role.add_managed_policy(storage.models_write_policy)
        self.task_role.add_to_policy(mirror_access(storage.mirror.file_system, storage.mirror.access_point,
                                                   write=True))
        # Archives and their extracted trees sit on local disk while they are checked and published.
        self.task_definition = fargate_task_definition(
            self, "TaskDefinition", cpu=settings.seed_cpu, memory_mib=settings.seed_memory_mib,
            ephemeral_storage_gib=settings.seed_ephemeral_storage_gib, task_role=self.task_role)
        add_efs_volume(self.task_definition, storage.mirror)
        self.container = add_modelsync_container(
            self.task_definition, SEED_CONTAINER, image=image, command=["modelsync", "seed"],
            log_group=self.log_group, stream_prefix=SEED_STREAM_PREFIX,
            environment={"MODELSYNC_BUCKET": storage.models.bucket.bucket_name,
                         "MODELSYNC_PREFIX": MODELS_PREFIX,
                         "MODELSYNC_SEED_ONLY": ",".join(settings.seed_models),
                         "MODELSYNC_EFS_ROOT": SEED_EFS_ROOT,
                         # The service's pinned versions stay in the mirror next to LATEST (efs mode reads them).
                         "MODELSYNC_MIRROR_PINS": ",".join(settings.pinned_models),
                         **WRITABLE_HOME})
        self.container.add_mount_points(ecs.MountPoint(source_volume=MODELS_VOLUME, container_path=SEED_EFS_ROOT,
                                                       read_only=False))


class SeedRunner(Construct):
    """Lambda that calls ecs:RunTask for the seeding task (code: lambdas/seed_runner, another part)."""

    def __init__(self, scope: Construct, id: str, *, settings: Settings, cluster: ecs.ICluster,
                 seeding: SeedingTask, subnets: list[ec2.ISubnet], security_group: ec2.ISecurityGroup,
                 code_dir: Path = SEED_RUNNER_DIR) -> None:
        super().__init__(scope, id)
        if not (code_dir / "handler.py").is_file():
            raise SettingsError(f"the seed runner's code {code_dir / 'handler.py'} is missing: restore "
                                "lambdas/seed_runner from the repository")
        task_definition = seeding.task_definition
        self.log_group = log_group(self, "Logs", settings)
        self.role = iam.Role(self, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
                             description="Seed runner: start the seeding task, write own logs")
        self.role.add_to_policy(iam.PolicyStatement(
            sid="RunSeedingTask", actions=["ecs:RunTask"], resources=[task_definition.task_definition_arn],
            conditions={"ArnEquals": {"ecs:cluster": cluster.cluster_arn}}))
        self.role.add_to_policy(iam.PolicyStatement(
            sid="PassSeedingRoles", actions=["iam:PassRole"],
            resources=[seeding.task_role.role_arn, task_definition.obtain_execution_role().role_arn],
            conditions={"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}}))
        # The runner starts the task with propagateTags; tag-on-create is authorized as ecs:TagResource
        # on the new task, whose id ECS only assigns then (hence the cluster-scoped task/* resource).
        new_tasks = cdk.Stack.of(self).format_arn(service="ecs", resource="task",
                                                  resource_name=f"{cluster.cluster_name}/*")
        self.role.add_to_policy(iam.PolicyStatement(
            sid="TagSeedingTaskOnCreate", actions=["ecs:TagResource"], resources=[new_tasks],
            conditions={"StringEquals": {"ecs:CreateAction": "RunTask"}}))
        acknowledge_wildcard_resource(self.role, new_tasks,
                                      "Tag-on-create at RunTask is authorized against the new task's ARN, which "
                                      "ECS assigns then; scoped to this cluster and to ecs:CreateAction RunTask.")
        self.role.add_to_policy(write_own_logs(self.log_group.log_group_arn))
        self.function = lambda_.Function(
            self, "Function",
            runtime=LAMBDA_RUNTIME,
            handler="handler.handler",
            code=lambda_.Code.from_asset(str(code_dir), exclude=["**/__pycache__", "**/*.pyc", "tests"]),
            role=self.role,
            log_group=self.log_group,
            timeout=cdk.Duration.seconds(30),
            memory_size=256,
            description="Starts the one-shot model seeding task on Fargate",
            environment={
                "CLUSTER_ARN": cluster.cluster_arn,
                "TASK_DEFINITION_ARN": task_definition.task_definition_arn,
                "SUBNET_IDS": ",".join(subnet.subnet_id for subnet in subnets),
                "SECURITY_GROUP_IDS": security_group.security_group_id,
                "CONTAINER_NAME": SEED_CONTAINER,
                "LOG_GROUP_NAME": seeding.log_group.log_group_name,
                "LOG_STREAM_PREFIX": SEED_STREAM_PREFIX,
                # A typo in `make seed --only` is refused before a seeding task starts.
                "CATALOG_NAMES": ",".join(settings.catalog_names),
            },
        )


def write_own_logs(log_group_arn: str) -> iam.PolicyStatement:
    return iam.PolicyStatement(sid="WriteOwnLogs", actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                               resources=[log_group_arn])


class AutoSeed(Construct):
    """Invokes the seed runner (asynchronously) after a deploy that changed the catalog or the seed
    selection. The fingerprint is part of the custom resource's construct id, so a change makes
    CloudFormation create a new resource (which invokes) and delete the old one at cleanup (which
    invokes nothing). Update events (another property changed) invoke nothing either. So a rolled-back
    deploy only deletes the new resource and never starts a second seeding task."""

    def __init__(self, scope: Construct, id: str, *, settings: Settings, runner: SeedRunner) -> None:
        super().__init__(scope, id)
        self.log_group = log_group(self, "Logs", settings)
        self.role = iam.Role(self, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
                             description="Auto-seed custom resource: invoke the seed runner, write own logs")
        self.role.add_to_policy(write_own_logs(self.log_group.log_group_arn))
        fingerprint = settings.seed_fingerprint
        invoke = cr.AwsSdkCall(
            service="Lambda", action="Invoke",
            parameters={"FunctionName": runner.function.function_name, "InvocationType": "Event", "Payload": "{}"},
            physical_resource_id=cr.PhysicalResourceId.of(f"seed-{fingerprint}"))
        self.resource = cr.AwsCustomResource(
            self, f"Invoke{fingerprint[:AUTO_SEED_ID_CHARS]}",
            on_create=invoke,
            policy=cr.AwsCustomResourcePolicy.from_statements([iam.PolicyStatement(
                sid="InvokeSeedRunner", actions=["lambda:InvokeFunction"], resources=[runner.function.function_arn])]),
            role=self.role,
            log_group=self.log_group,
            install_latest_aws_sdk=False,
            timeout=cdk.Duration.minutes(2),
        )
