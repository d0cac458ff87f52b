"""The one-shot seeding task, the seed-runner Lambda that starts it, and the optional auto-seed
(ModelSeeding composes the three; each is usable on its own).

No native CloudFormation resource runs a one-shot task, and a long download from Zenodo inside the
stack lifecycle would roll a deploy back on a flaky source. So seeding is started out of band: by
the operator (`make seed` invokes the seed runner), or, with `seed_on_deploy`, by a custom resource
that invokes the seed runner asynchronously (fire and forget) whenever the catalog or the seed
selection changed. Being asynchronous, it is not ordered before the service update: a model must be
seeded before a deploy makes the service load it (docs/infrastructure.md, "Adding a model").
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import custom_resources as cr
from constructs import Construct

from model_delivery.code import lambda_code_dir
from model_delivery.contract import MODELS_PREFIX
from model_delivery.errors import ModelDeliveryError
from model_delivery.functions import hardened_function, write_own_logs
from model_delivery.logs import check_retention, log_group
from model_delivery.metrics import MetricsOptions
from model_delivery.nag import acknowledge_wildcard_resource
from model_delivery.scanner import skip_checkov
from model_delivery.signing_task import SIGN_CONTAINER, SIGN_STREAM_PREFIX, SigningTask
from model_delivery.specs import check_model_names
from model_delivery.store import ModelStore
from model_delivery.tasks import (
    add_modelsync_container,
    check_ephemeral_storage,
    check_fargate_size,
    family_arn_prefix,
    fargate_task_definition,
)

SEED_CONTAINER = "seed"
SEED_STREAM_PREFIX = "seed"  # stream: seed/seed/<task id> (docs/contracts.md)
SEED_EFS_ROOT = "/mnt/models"
# The root file system is read-only and the image's HOME is not writable: anything that caches under ~
# (huggingface_hub for PaddleX's downloads, pip-style ~/.cache users) must land on the scratch /tmp.
SEED_HOME = "/tmp/home"
WRITABLE_HOME = {
    "HOME": SEED_HOME,
    "XDG_CACHE_HOME": f"{SEED_HOME}/.cache",
    "HF_HOME": f"{SEED_HOME}/.cache/huggingface",
}


SEED_RUNNER_DIR = lambda_code_dir("seed_runner")
AUTO_SEED_ID_CHARS = 16  # of the seed fingerprint, in the auto-seed resource's construct id
# With a reservation: one invocation at a time (a second invoke while one starts a task is throttled).
SEED_RUNNER_CONCURRENCY = 1
# The Lambda CDK adds for every AwsCustomResource of a stack (a singleton: one per stack, uuid fixed in CDK).
AWS_CUSTOM_RESOURCE_FUNCTION = "AWS679f53fac002430cb0da5b7982bd2287"
CDK_FUNCTION_SKIPS = {
    "CKV_AWS_115": "A Lambda CDK generates and owns (AwsCustomResource provider); called only by CloudFormation "
    "during deploys, so there is nothing for reserved concurrency to limit.",
    "CKV_AWS_116": "A Lambda CDK generates and owns (AwsCustomResource provider); CloudFormation invokes it "
    "synchronously and reports a failure as a failed deploy, there is no async event to keep.",
    "CKV_AWS_117": "A Lambda CDK generates and owns (AwsCustomResource provider); it calls the Lambda API only "
    "and its props expose no VPC placement for the singleton provider.",
}


class SeedingTask(Construct):
    """The seeding task definition: `modelsync seed` on the modelsync image (built with WITH_PADDLEOCR=1 to prewarm
    PaddleOCR). It downloads and unpacks archives and runs PaddleX, so it holds no signing key: it stages each new
    version (files, manifest, staging pointer: the only objects its role may write) for the signing task
    (SigningTask), and never touches the EFS mirror.

    Props: store, image, seed_models (catalog names; empty: the catalog's enabled entries), cpu, memory_mib,
    ephemeral_storage_gib, log_retention_days, metrics (MetricsOptions: where the seed's records go; None: none).
    Attributes: store, task_role, task_definition, container, log_group."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        store: ModelStore,
        image: ecs.ContainerImage,
        seed_models: Sequence[str] = (),
        cpu: int = 2048,
        memory_mib: int = 8192,
        ephemeral_storage_gib: int = 50,
        log_retention_days: int = 30,
        metrics: MetricsOptions | None = None,
    ) -> None:
        super().__init__(scope, id)
        check_model_names(seed_models, "SeedingTask seed_models")
        check_fargate_size("SeedingTask cpu", "SeedingTask memory_mib", cpu, memory_mib)
        check_ephemeral_storage("SeedingTask ephemeral_storage_gib", ephemeral_storage_gib)
        self.store = store
        self.log_group = log_group(
            self, "Logs", check_retention(log_retention_days, "SeedingTask log_retention_days"), store.log_encryption
        )
        # The store's own role: the key and bucket policies trust it, and it is kept with them.
        self.task_role = store.seeding_role
        # Archives and their extracted trees sit on local disk while they are checked and published.
        self.task_definition = fargate_task_definition(
            self,
            "TaskDefinition",
            cpu=cpu,
            memory_mib=memory_mib,
            ephemeral_storage_gib=ephemeral_storage_gib,
            task_role=self.task_role,
        )
        environment = {
            "MODELSYNC_BUCKET": store.bucket.bucket_name,
            "MODELSYNC_PREFIX": MODELS_PREFIX,
            # No signing key: it stages. The trust key checks what is already published (unchanged sources).
            "MODELSYNC_TRUST_KEY": store.signing_key.key_arn,
            "MODELSYNC_SEED_ONLY": ",".join(seed_models),
        }
        self.container = add_modelsync_container(
            self.task_definition,
            SEED_CONTAINER,
            image=image,
            command=["modelsync", "seed"],
            log_group=self.log_group,
            stream_prefix=SEED_STREAM_PREFIX,
            environment={**environment, **WRITABLE_HOME, **(metrics.environment() if metrics else {})},
        )


class SeedRunner(Construct):
    """Lambda that calls ecs:RunTask for the seeding task (code: lambdas/seed_runner), and for the signing task
    when a seeding task ends with exit 0 (an EventBridge rule invokes it with that task). Nothing else in the app
    may pass the two task roles: only this function can start a task that holds them.
    signing: the SigningTask. reserved_concurrency: None (default: fresh accounts cannot reserve any) or e.g.
    SEED_RUNNER_CONCURRENCY."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        cluster: ecs.ICluster,
        seeding: SeedingTask,
        signing: SigningTask,
        subnets: Sequence[ec2.ISubnet],
        security_group: ec2.ISecurityGroup,
        catalog_names: Sequence[str] = (),
        log_retention_days: int = 30,
        code_dir: Path = SEED_RUNNER_DIR,
        reserved_concurrency: int | None = None,
    ) -> None:
        super().__init__(scope, id)
        if not (code_dir / "handler.py").is_file():
            raise ModelDeliveryError(
                f"the seed runner's code {code_dir / 'handler.py'} is missing: restore "
                "lambdas/seed_runner from the repository (or reinstall model-delivery)"
            )
        if not subnets:
            raise ModelDeliveryError(
                "SeedRunner subnets is empty: give the private subnets (with egress) the seeding task runs in"
            )
        check_model_names(catalog_names, "SeedRunner catalog_names")
        task_definition = seeding.task_definition
        self.seeding, self.signing = seeding, signing
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="Seed runner: start the seeding and signing tasks, write own logs",
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="RunSeedingTasks",
                actions=["ecs:RunTask"],
                resources=[task_definition.task_definition_arn, signing.task_definition.task_definition_arn],
                conditions={"ArnEquals": {"ecs:cluster": cluster.cluster_arn}},
            )
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="PassSeedingRoles",
                actions=["iam:PassRole"],
                resources=[
                    seeding.task_role.role_arn,
                    task_definition.obtain_execution_role().role_arn,
                    signing.task_role.role_arn,
                    signing.task_definition.obtain_execution_role().role_arn,
                ],
                conditions={"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}},
            )
        )
        # The runner starts the task with propagateTags; tag-on-create is authorized as ecs:TagResource
        # on the new task, whose id ECS only assigns then (hence the cluster-scoped task/* resource).
        new_tasks = cdk.Stack.of(self).format_arn(
            service="ecs", resource="task", resource_name=f"{cluster.cluster_name}/*"
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="TagSeedingTaskOnCreate",
                actions=["ecs:TagResource"],
                resources=[new_tasks],
                conditions={"StringEquals": {"ecs:CreateAction": "RunTask"}},
            )
        )
        acknowledge_wildcard_resource(
            self.role,
            new_tasks,
            "Tag-on-create at RunTask is authorized against the new task's ARN, which "
            "ECS assigns then; scoped to this cluster and to ecs:CreateAction RunTask.",
        )
        hardened = hardened_function(
            self,
            code_dir=code_dir,
            role=self.role,
            encryption=seeding.store.log_encryption,
            reserved_concurrency=reserved_concurrency,
            log_retention_days=log_retention_days,
            where="SeedRunner",
            timeout=cdk.Duration.seconds(30),
            memory_size=256,
            description="Starts the one-shot model seeding task, and the signing task after it, on Fargate",
            environment={
                "CLUSTER_ARN": cluster.cluster_arn,
                "TASK_DEFINITION_ARN": task_definition.task_definition_arn,
                "SUBNET_IDS": ",".join(subnet.subnet_id for subnet in subnets),
                "SECURITY_GROUP_IDS": security_group.security_group_id,
                "CONTAINER_NAME": SEED_CONTAINER,
                "LOG_GROUP_NAME": seeding.log_group.log_group_name,
                "LOG_STREAM_PREFIX": SEED_STREAM_PREFIX,
                # A typo in `make seed --only` is refused before a seeding task starts.
                "CATALOG_NAMES": ",".join(catalog_names),
                "SIGN_TASK_DEFINITION_ARN": signing.task_definition.task_definition_arn,
                "SIGN_CONTAINER_NAME": SIGN_CONTAINER,
                "SIGN_LOG_GROUP_NAME": signing.log_group.log_group_name,
                "SIGN_LOG_STREAM_PREFIX": SIGN_STREAM_PREFIX,
            },
        )
        self.function, self.log_group, self.dead_letter_queue = (
            hardened.function,
            hardened.log_group,
            hardened.dead_letter_queue,
        )
        # A seeding task that ended with exit 0 has staged what it published: sign it. The task's ARN goes to the
        # function as {"sign_after": ARN}; its id makes the signing task's client token, so a repeated event
        # starts no second one.
        self.sign_rule = events.Rule(
            self,
            "SignAfterSeed",
            description="Model delivery: a seeding task ended with exit 0; start the signing task",
            event_pattern=events.EventPattern(
                source=["aws.ecs"],
                detail_type=["ECS Task State Change"],
                detail={
                    "clusterArn": [cluster.cluster_arn],
                    "lastStatus": ["STOPPED"],
                    "taskDefinitionArn": [{"prefix": family_arn_prefix(self, task_definition)}],
                    "containers": {"name": [SEED_CONTAINER], "exitCode": [0]},
                },
            ),
            targets=[
                targets.LambdaFunction(
                    self.function,
                    event=events.RuleTargetInput.from_object(
                        {"sign_after": events.EventField.from_path("$.detail.taskArn")}
                    ),
                )
            ],
        )


class AutoSeed(Construct):
    """Invokes the seed runner (asynchronously) after a deploy that changed the catalog or the seed
    selection. The fingerprint is part of the custom resource's construct id, so a change makes
    CloudFormation create a new resource (which invokes) and delete the old one at cleanup (which
    invokes nothing). Update events (another property changed) invoke nothing either. So a rolled-back
    deploy only deletes the new resource and never starts a second seeding task."""

    def __init__(
        self, scope: Construct, id: str, *, runner: SeedRunner, fingerprint: str, log_retention_days: int = 30
    ) -> None:
        super().__init__(scope, id)
        if len(fingerprint) < AUTO_SEED_ID_CHARS or not fingerprint.isalnum():
            raise ModelDeliveryError(
                f"AutoSeed fingerprint {fingerprint!r} is not allowed: give at least "
                f"{AUTO_SEED_ID_CHARS} letters or digits that change whenever what is seeded "
                "changes (e.g. a hash of the catalog and the seed selection)"
            )
        self.log_group = log_group(
            self,
            "Logs",
            check_retention(log_retention_days, "AutoSeed log_retention_days"),
            runner.seeding.store.log_encryption,
        )
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="Auto-seed custom resource: invoke the seed runner, write own logs",
        )
        self.role.add_to_policy(write_own_logs(self.log_group.log_group_arn))
        invoke = cr.AwsSdkCall(
            service="Lambda",
            action="Invoke",
            parameters={"FunctionName": runner.function.function_name, "InvocationType": "Event", "Payload": "{}"},
            physical_resource_id=cr.PhysicalResourceId.of(f"seed-{fingerprint}"),
        )
        self.resource = cr.AwsCustomResource(
            self,
            f"Invoke{fingerprint[:AUTO_SEED_ID_CHARS]}",
            on_create=invoke,
            policy=cr.AwsCustomResourcePolicy.from_statements(
                [
                    iam.PolicyStatement(
                        sid="InvokeSeedRunner",
                        actions=["lambda:InvokeFunction"],
                        resources=[runner.function.function_arn],
                    )
                ]
            ),
            role=self.role,
            log_group=self.log_group,
            install_latest_aws_sdk=False,
            timeout=cdk.Duration.minutes(2),
        )
        # The first invoke can start the seeding task (and then the signing task) during this very deploy: their
        # roles and execution roles must exist with their policies.
        for task in (runner.seeding, runner.signing):
            self.node.add_dependency(task.task_role, task.task_definition.obtain_execution_role())
        provider = cdk.Stack.of(self).node.try_find_child(AWS_CUSTOM_RESOURCE_FUNCTION)
        if provider is None:
            raise ModelDeliveryError(
                "AutoSeed cannot find the AwsCustomResource provider Lambda "
                f"({AWS_CUSTOM_RESOURCE_FUNCTION}): update model_delivery/seeding.py for this CDK"
            )
        for check_id, reason in CDK_FUNCTION_SKIPS.items():
            skip_checkov(provider, check_id, reason)


def seed_fingerprint(catalog_sha256: str, seed_models: Sequence[str], image_identity: str = "") -> str:
    """Changes whenever the catalog file or the seed selection changes (and, when the image carries the
    catalog, whenever the image does): what makes AutoSeed start a seed on a deploy."""
    digest = hashlib.sha256(f"{catalog_sha256}\n{','.join(seed_models)}\n{image_identity}".encode())
    return digest.hexdigest()[:32]


class ModelSeeding(Construct):
    """The seeding task, the signing task after it, the seed runner that starts both (`make seed` invokes it),
    and, with `seed_on_deploy`, the auto-seed that invokes it on a deploy that changed what is seeded.

    Props: cluster, store (ModelStore; with a mirror, the signing task also brings it up to date), image (the
    modelsync image, WITH_PADDLEOCR=1 to prewarm PaddleOCR), signing_image (default: image; PaddleOCR is not
    needed there), subnets and security_group (private subnets with egress: Zenodo and the PaddleOCR hosts are
    on the internet; HTTPS out, NFS to the mirror), seed_models (catalog names; empty: the catalog's enabled
    entries), mirror_pins (NAME@VERSION the apps pin, kept in the mirror), catalog_names (the runner refuses
    other names), cpu, memory_mib, ephemeral_storage_gib (the seeding task's), log_retention_days,
    seed_on_deploy, fingerprint (required with seed_on_deploy), metrics (MetricsOptions, or None),
    runner_concurrency (reserved concurrency of the runner, default None). The four parts are public and compose
    on their own.
    Attributes: task (SeedingTask), signing (SigningTask), runner (SeedRunner), auto_seed (AutoSeed or None).
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        cluster: ecs.ICluster,
        store: ModelStore,
        image: ecs.ContainerImage,
        subnets: Sequence[ec2.ISubnet],
        security_group: ec2.ISecurityGroup,
        signing_image: ecs.ContainerImage | None = None,
        seed_models: Sequence[str] = (),
        mirror_pins: Sequence[str] = (),
        catalog_names: Sequence[str] = (),
        cpu: int = 2048,
        memory_mib: int = 8192,
        ephemeral_storage_gib: int = 50,
        log_retention_days: int = 30,
        seed_on_deploy: bool = False,
        fingerprint: str = "",
        code_dir: Path = SEED_RUNNER_DIR,
        metrics: MetricsOptions | None = None,
        runner_concurrency: int | None = None,
    ) -> None:
        super().__init__(scope, id)
        self.task = SeedingTask(
            self,
            "Seeding",
            store=store,
            image=image,
            seed_models=seed_models,
            cpu=cpu,
            memory_mib=memory_mib,
            ephemeral_storage_gib=ephemeral_storage_gib,
            log_retention_days=log_retention_days,
            metrics=metrics,
        )
        self.signing = SigningTask(
            self,
            "Signing",
            store=store,
            image=signing_image or image,
            mirror_pins=mirror_pins,
            log_retention_days=log_retention_days,
            metrics=metrics,
        )
        self.runner = SeedRunner(
            self,
            "SeedRunner",
            cluster=cluster,
            seeding=self.task,
            signing=self.signing,
            subnets=subnets,
            security_group=security_group,
            catalog_names=catalog_names,
            log_retention_days=log_retention_days,
            code_dir=code_dir,
            reserved_concurrency=runner_concurrency,
        )
        self.auto_seed = None
        if seed_on_deploy:
            self.auto_seed = AutoSeed(
                self, "AutoSeed", runner=self.runner, fingerprint=fingerprint, log_retention_days=log_retention_days
            )
