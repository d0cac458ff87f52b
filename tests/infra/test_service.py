"""Service stack: repository, cluster, service, both task-definition modes, seeding task, seed runner,
auto-seed, IAM least privilege and the outputs other parts read."""

from __future__ import annotations

import json

import pytest

from model_delivery.bucket_keys import SIGN_KEYS, STAGE_KEYS
from model_delivery.catalog import load_catalog
from model_delivery.errors import ModelDeliveryError
from stacks.settings import ImageSettings

from .helpers import (FIXTURE_CATALOG, storage_value, Built, actions, build_app, containers, env, logical_id, mounts, only, resources,
                      settings_for, statements, task_definition)

CONTRACT_OUTPUTS = {"ClusterName", "Apps", "SeedTaskDefinitionArn", "SeedRunnerFunctionName",
                    "SeedLogGroupName", "SeedContainerName", "SeedLogStreamPrefix", "RepositoryUri",
                    "ModelsBucketName", "FileSystemId"}


def all_statements(t) -> list[dict]:
    """Statements of every AWS::IAM::Policy and every inline policy of every role."""
    found = [s for type_ in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy") for p in resources(t, type_).values()
             for s in p["Properties"]["PolicyDocument"]["Statement"]]
    for role in resources(t, "AWS::IAM::Role").values():
        for policy in role["Properties"].get("Policies", []):
            found.extend(policy["PolicyDocument"]["Statement"])
    return found


# ---- repository, cluster, service -------------------------------------------------------------

def test_repository_is_immutable_scanned_and_pruned(s3_built):
    props = only(s3_built.storage, "AWS::ECR::Repository")["Properties"]
    assert props["ImageTagMutability"] == "IMMUTABLE"
    assert props["ImageScanningConfiguration"] == {"ScanOnPush": True}
    rules = json.loads(props["LifecyclePolicy"]["LifecyclePolicyText"])["rules"]
    assert [r["selection"]["countType"] for r in rules] == ["imageCountMoreThan"]
    assert rules[0]["selection"]["countNumber"] == ImageSettings().ecr_max_image_count


def test_cluster_has_container_insights(s3_built):
    props = only(s3_built.service, "AWS::ECS::Cluster")["Properties"]
    assert props["ClusterSettings"] == [{"Name": "containerInsights", "Value": "enabled"}]


def test_service_runs_on_fargate_1_4_in_private_subnets_with_rollback(s3_built):
    network, service = s3_built.network, s3_built.service
    props = only(service, "AWS::ECS::Service")["Properties"]
    assert props["LaunchType"] == "FARGATE" and props["PlatformVersion"] == "1.4.0"
    assert props["DesiredCount"] == 1
    assert props["DeploymentConfiguration"]["DeploymentCircuitBreaker"] == {"Enable": True, "Rollback": True}
    vpc = props["NetworkConfiguration"]["AwsvpcConfiguration"]
    assert vpc["AssignPublicIp"] == "DISABLED"
    published = {name: o["Value"] for name, o in network.find_outputs("*").items()}
    subnets = {published[s["Fn::GetStackOutput"]["OutputName"]]["Ref"] for s in vpc["Subnets"]}
    assert subnets and all(s.startswith("VpcprivateSubnet") for s in subnets)
    # Its own security group, in its own stack: replacing it never touches another stack (docs/infrastructure.md).
    [sg] = vpc["SecurityGroups"]
    assert sg == {"Fn::GetAtt": [logical_id(service, "AWS::EC2::SecurityGroup", "^DemoSecurityGroup"), "GroupId"]}


def test_service_scales_on_cpu_within_the_bounds(s3_built, prod_built):
    for built, (low, high) in ((s3_built, (1, 4)), (prod_built, (2, 8))):
        target = only(built.service, "AWS::ApplicationAutoScaling::ScalableTarget")["Properties"]
        assert (target["MinCapacity"], target["MaxCapacity"]) == (low, high)
        policy = only(built.service, "AWS::ApplicationAutoScaling::ScalingPolicy")["Properties"]
        config = policy["TargetTrackingScalingPolicyConfiguration"]
        assert config["PredefinedMetricSpecification"] == {"PredefinedMetricType": "ECSServiceAverageCPUUtilization"}
        assert config["TargetValue"] == 60


def test_20_gib_is_the_fargate_default_and_left_unset():
    built = Built({"apps.demo.ephemeral_storage_gib": "20", "seed_ephemeral_storage_gib": "20"})
    for task in resources(built.service, "AWS::ECS::TaskDefinition").values():
        assert "EphemeralStorage" not in task["Properties"]


def test_start_service_false_deploys_the_service_without_tasks():
    # The first deploy, before anything is seeded: no task may start (each would fail its init container).
    built = Built({"start_service": "false"})
    assert only(built.service, "AWS::ECS::Service")["Properties"]["DesiredCount"] == 0
    target = only(built.service, "AWS::ApplicationAutoScaling::ScalableTarget")["Properties"]
    assert (target["MinCapacity"], target["MaxCapacity"]) == (0, 4)


# ---- both modes ---------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["s3", "efs"])
def test_every_container_is_non_root_read_only_logged_with_a_scratch_tmp(s3_built, efs_built, mode):
    t = (s3_built if mode == "s3" else efs_built).service
    log_groups = resources(t, "AWS::Logs::LogGroup")
    for pattern in ("DemoTaskDefinition", "SeedingTaskDefinition"):
        for name, container in containers(t, pattern).items():
            assert container["User"] == "10001:10001", name
            assert container["ReadonlyRootFilesystem"] is True, name
            assert mounts(container)["/tmp"] == (f"{name}-tmp", False), name
            log = container["LogConfiguration"]
            assert log["LogDriver"] == "awslogs", name
            group = log["Options"]["awslogs-group"]["Ref"]
            assert log_groups[group]["Properties"]["RetentionInDays"] == 30, name


@pytest.mark.parametrize("mode", ["s3", "efs"])
def test_demo_app_container_serves_with_health_check_and_contract_environment(s3_built, efs_built, mode):
    built = s3_built if mode == "s3" else efs_built
    app = containers(built.service, "DemoTaskDefinition")["app"]
    assert app["Command"] == ["modelsync", "serve"] and app["Essential"] is True
    assert app["HealthCheck"]["Command"] == ["CMD", "modelsync", "healthcheck"]
    assert app["PortMappings"] == [{"ContainerPort": 8080, "Protocol": "tcp"}]
    assert env(app) == {"MODELSYNC_DEST": "/models",
                        "MODELSYNC_MODELS": "SEG_M2F_GrapheneL,CLS_AMM_GrapheneL,paddleocr",
                        "MODELSYNC_PORT": "8080", "MODEL_PATH": "/srv/models"}  # flat layout: MODEL_PATH = view
    assert mounts(app)["/models"] == ("models", True)  # read-only in both modes


@pytest.mark.parametrize("mode", ["s3", "efs"])
def test_the_init_container_builds_the_view_the_app_mounts_read_only(s3_built, efs_built, mode):
    built = s3_built if mode == "s3" else efs_built
    task = task_definition(built.service, "DemoTaskDefinition")
    assert {"Name": "model-view"} in task["Volumes"]  # task-local (Fargate ephemeral storage), not EFS
    c = containers(built.service, "DemoTaskDefinition")
    init = c["model-pull" if mode == "s3" else "model-verify"]
    assert {k: env(init)[k] for k in ("MODELSYNC_VIEW", "MODELSYNC_LAYOUT")} == {
        "MODELSYNC_VIEW": "/var/lib/modelsync/view", "MODELSYNC_LAYOUT": "flat"}
    assert mounts(init)["/var/lib/modelsync/view"] == ("model-view", False)
    assert mounts(c["app"])["/srv/models"] == ("model-view", True)
    # The view's links point into the store: the app mounts it at the same path as the init container.
    assert mounts(c["app"])["/models"][0] == mounts(init)["/models"][0] == "models"


@pytest.mark.parametrize("mode", ["s3", "efs"])
def test_every_container_has_an_init_process_and_a_stop_timeout(s3_built, efs_built, mode):
    """ECS stops tasks with SIGTERM, then SIGKILL after the stop timeout; PID 1 must forward it."""
    t = (s3_built if mode == "s3" else efs_built).service
    for pattern in ("DemoTaskDefinition", "SeedingTaskDefinition"):
        for name, container in containers(t, pattern).items():
            assert container["LinuxParameters"]["InitProcessEnabled"] is True, name
            assert container["StopTimeout"] == (30 if name == "app" else 10), name


def test_s3_mode_pulls_into_a_task_volume_before_the_app_starts(s3_built):
    t = s3_built.service
    task = task_definition(t, "DemoTaskDefinition")
    models = [v for v in task["Volumes"] if v["Name"] == "models"]
    assert models == [{"Name": "models"}]  # task-local (Fargate ephemeral storage), no EFS
    assert task["EphemeralStorage"] == {"SizeInGiB": 30}
    c = containers(t, "DemoTaskDefinition")
    pull = c["model-pull"]
    assert pull["Command"] == ["modelsync", "pull"] and pull["Essential"] is False
    assert mounts(pull)["/models"] == ("models", False)
    assert c["app"]["DependsOn"] == [{"ContainerName": "model-pull", "Condition": "SUCCESS"}]
    pull_env = env(pull)
    assert pull_env["MODELSYNC_PREFIX"] == "models/" and pull_env["MODELSYNC_DEST"] == "/models"
    assert pull_env["MODELSYNC_MODELS"] == env(c["app"])["MODELSYNC_MODELS"]
    assert "Fn::GetStackOutput" in pull_env["MODELSYNC_BUCKET"]


def test_efs_mode_verifies_the_read_only_mirror_before_the_app_starts(efs_built):
    t = efs_built.service
    c = containers(t, "DemoTaskDefinition")
    verify = c["model-verify"]
    assert verify["Command"] == ["modelsync", "verify"] and verify["Essential"] is False
    assert mounts(verify)["/models"] == ("models", True)
    assert c["app"]["DependsOn"] == [{"ContainerName": "model-verify", "Condition": "SUCCESS"}]
    assert "MODELSYNC_BUCKET" not in env(verify)


@pytest.mark.parametrize("mode", ["s3", "efs"])
def test_every_efs_volume_uses_tls_iam_and_the_access_point(s3_built, efs_built, mode):
    built = s3_built if mode == "s3" else efs_built
    efs_volumes = [v for task in resources(built.service, "AWS::ECS::TaskDefinition").values()
                   for v in task["Properties"].get("Volumes", []) if "EFSVolumeConfiguration" in v]
    assert len(efs_volumes) == (1 if mode == "s3" else 2)  # seeding always; the service in efs mode
    for volume in efs_volumes:
        config = volume["EFSVolumeConfiguration"]
        assert config["TransitEncryption"] == "ENABLED"
        assert config["AuthorizationConfig"]["IAM"] == "ENABLED"
        assert "AccessPointId" in config["AuthorizationConfig"]
        assert "RootDirectory" not in config  # an access point with a root other than / is rejected


# ---- IAM ----------------------------------------------------------------------------------------

def test_s3_mode_service_role_only_reads_the_models_prefix(s3_built):
    found = statements(s3_built, "DemoTaskRole")
    # GetObjectVersion: the same objects by version (S3 Files' direct reads in mode s3files use it).
    assert actions(found) == {"s3:GetObject", "s3:GetObjectVersion", "s3:ListBucket", "kms:Decrypt", "kms:GetPublicKey"}
    by_sid = {s["Sid"]: s for s in found}
    assert by_sid["ReadModels"]["Resource"]["Fn::Join"][1][1] == "/models/*"
    assert by_sid["ListModelsPrefix"]["Condition"] == {"StringLike": {"s3:prefix": ["models/", "models/*"]}}
    assert by_sid["ModelsKeyViaS3Only"]["Condition"] == {"StringEquals": {"kms:ViaService": "s3.eu-west-1.amazonaws.com"}}


def test_efs_mode_service_role_only_mounts_read_only_through_the_access_point(efs_built):
    found = statements(efs_built, "DemoTaskRole")
    assert actions(found) == {"elasticfilesystem:ClientMount", "kms:GetPublicKey"}  # + the manifests' public key
    condition = next(s for s in found if s["Sid"] == "MountModelMirrorReadOnly")["Condition"]
    assert condition["Bool"] == {"elasticfilesystem:AccessedViaMountTarget": "true"}
    assert "elasticfilesystem:AccessPointArn" in condition["StringEquals"]


@pytest.mark.parametrize("mode", ["s3", "efs"])
def test_service_role_can_never_write(s3_built, efs_built, mode):
    granted = actions(statements(s3_built if mode == "s3" else efs_built, "DemoTaskRole"))
    assert not [a for a in granted if a.startswith(("s3:Put", "s3:Delete"))]
    assert not granted & {"elasticfilesystem:ClientWrite", "elasticfilesystem:ClientRootAccess"}


def object_patterns(statement: dict) -> list[str]:
    """The object key patterns of a statement on the models bucket (`<bucket ARN>/<pattern>`)."""
    resources_ = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
    return [r["Fn::Join"][1][1].lstrip("/") for r in resources_]


def test_the_seeding_role_only_stages_versions_and_never_signs_or_mounts_the_mirror(s3_built):
    """The seeding task parses archives and runs PaddleX: its role writes a staged version's objects and nothing
    else, holds no kms:Sign and no EFS access."""
    found = statements(s3_built, "^SeedingRole")
    assert actions(found) == {"s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload", "s3:ListBucket",
                              "kms:Decrypt", "kms:GenerateDataKey", "kms:GetPublicKey"}
    [stage] = [s for s in found if s["Sid"] == "StageVersions"]
    assert object_patterns(stage) == ["models/*/*/files/*", "models/*/*/manifest.json", "models/*/STAGED"]


def test_the_signing_role_signs_moves_latest_and_writes_the_mirror_but_never_as_root(s3_built):
    found = statements(s3_built, "^SigningRole")
    assert actions(found) == {"s3:GetObject", "s3:GetObjectVersion", "s3:PutObject", "s3:DeleteObject",
                              "s3:ListBucket", "s3:ListBucketVersions", "kms:Decrypt", "kms:GenerateDataKey",
                              "kms:Sign", "kms:GetPublicKey", "elasticfilesystem:ClientMount",
                              "elasticfilesystem:ClientWrite"}
    by_sid = {s["Sid"]: s for s in found}
    assert object_patterns(by_sid["SignVersions"]) == [
        "models/*/*/manifest.json.sig", "models/*/*/model.sig", "models/*/LATEST"]
    assert object_patterns(by_sid["ClearStaged"]) == ["models/*/STAGED"]
    mirror = by_sid["MountModelMirrorReadWrite"]
    assert "elasticfilesystem:AccessPointArn" in mirror["Condition"]["StringEquals"]


def test_only_the_seed_runner_may_pass_the_seeding_and_signing_roles(s3_built, efs_built, two_apps_built):
    """Whoever can pass a role that publishes can run any command with it: in this app, only the seed runner."""
    for built in (s3_built, efs_built, two_apps_built):
        for template in (built.network, built.storage, built.service):
            for statement in all_statements(template):
                acts = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                if "iam:PassRole" in acts:
                    assert statement["Sid"] == "PassSeedingRoles", statement
        runner_role = logical_id(built.service, "AWS::IAM::Role", "^SeedRunnerRole")
        owners = [p for p in resources(built.service, "AWS::IAM::Policy").values()
                  if any(s.get("Sid") == "PassSeedingRoles" for s in p["Properties"]["PolicyDocument"]["Statement"])]
        assert [p["Properties"]["Roles"] for p in owners] == [[{"Ref": runner_role}]]


@pytest.mark.parametrize("config", ["s3", "efs", "prod-ecr"])
def test_no_wildcard_actions_and_wildcard_resources_only_where_aws_requires(s3_built, efs_built, prod_built, config):
    built = {"s3": s3_built, "efs": efs_built, "prod-ecr": prod_built}[config]
    for template in (built.network, built.storage, built.service):
        for statement in all_statements(template):
            acts = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            assert not [a for a in acts if "*" in a], statement
            res = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            for resource in res:
                text = json.dumps(resource)
                if resource == "*":
                    assert acts == ["ecr:GetAuthorizationToken"], statement
                elif "*" in text:  # the models prefix and each step's key patterns, new tasks of the cluster,
                    # the seeding and signing tasks' log streams, the EventBridge rules S3 Files names itself
                    step_keys = tuple(f'/{key}"]]}}' for key in (*STAGE_KEYS, *SIGN_KEYS))
                    assert text.endswith(('/models/*"]]}', '"/*"]]}', ':log-stream:seed/seed/*"]]}',
                                          ':log-stream:sign/sign/*"]]}', ':rule/DO-NOT-DELETE-S3-Files*"',
                                          *step_keys)), statement


def test_no_aws_managed_policies_except_on_cdks_default_security_group_provider(s3_built):
    # CDK's custom resource that strips the default security group's rules (feature flag
    # restrictDefaultSecurityGroup) runs with AWSLambdaBasicExecutionRole; every role we create has
    # explicit statements only, inline or in the storage stack's customer-managed policies.
    for template in (s3_built.network, s3_built.storage, s3_built.service):
        for key, role in resources(template, "AWS::IAM::Role").items():
            for arn in role["Properties"].get("ManagedPolicyArns", []):
                if "Fn::GetStackOutput" in arn:
                    assert arn["Fn::GetStackOutput"]["StackName"] == "ModelDelivery-dev-Storage"
                else:
                    assert key.startswith("CustomVpcRestrictDefaultSGCustomResourceProviderRole"), key


def test_execution_roles_pull_only_from_the_repository_in_use(s3_built, prod_built):
    for pattern in ("DemoTaskDefinitionExecutionRole", "SeedingTaskDefinitionExecutionRole"):
        for built, repository in ((s3_built, "asset"), (prod_built, "project")):
            pulls = [s for s in statements(built, pattern) if "ecr:BatchGetImage" in s["Action"]]
            assert len(pulls) == 1
            if repository == "asset":
                assert pulls[0]["Resource"].endswith(":repository/cdk-hnb659fds-container-assets-111111111111-eu-west-1")
            else:  # the storage stack's repository, which exists before the service stack (image_source=ecr)
                repo = logical_id(built.storage, "AWS::ECR::Repository", "Repository")
                parts = pulls[0]["Resource"]["Fn::Join"][1]
                [name] = {json.dumps(part) for part in parts if "Fn::GetStackOutput" in part}
                output = json.loads(name)["Fn::GetStackOutput"]
                assert output["StackName"] == built.delivery.storage.stack_name
                assert built.storage.to_json()["Outputs"][output["OutputName"]]["Value"] == {"Ref": repo}

def test_ecr_image_source_uses_the_tag_in_the_project_repository(prod_built):
    for pattern in ("DemoTaskDefinition", "SeedingTaskDefinition"):
        for container in containers(prod_built.service, pattern).values():
            assert json.dumps(container["Image"]).endswith(':v1.2.3"]]}')
            assert "Repository" in json.dumps(container["Image"])



def test_ecr_image_source_can_deploy_from_an_empty_account(prod_built):
    """The repository the tasks pull from is created by a stack the service stack depends on, and that stack
    publishes where to push, so `deploy Storage`, push, `deploy --all` works (docs/infrastructure.md)."""
    assert not resources(prod_built.service, "AWS::ECR::Repository")
    storage = prod_built.delivery.storage
    assert storage in prod_built.delivery.service.dependencies
    repo = logical_id(prod_built.storage, "AWS::ECR::Repository", "Repository")
    uri = prod_built.storage.find_outputs("RepositoryUri")["RepositoryUri"]["Value"]
    assert repo in json.dumps(uri)

# ---- seeding task, seed runner, auto-seed -------------------------------------------------------

def test_the_seeding_task_stages_with_room_for_the_largest_archive_and_no_signing_key(s3_built):
    t = s3_built.service
    task = task_definition(t, "SeedingTaskDefinition")
    assert task["EphemeralStorage"] == {"SizeInGiB": 50}
    assert (task["Cpu"], task["Memory"]) == ("2048", "8192")
    assert [v for v in task["Volumes"] if "EFSVolumeConfiguration" in v] == []  # the signing task mirrors
    [seed] = containers(t, "SeedingTaskDefinition").values()
    assert seed["Name"] == "seed" and seed["Command"] == ["modelsync", "seed"]
    assert seed["LogConfiguration"]["Options"]["awslogs-stream-prefix"] == "seed"
    assert "/mnt/models" not in mounts(seed)
    seed_env = env(seed)
    assert "MODELSYNC_SIGNING_KEY" not in seed_env and "MODELSYNC_EFS_ROOT" not in seed_env
    assert seed_env["MODELSYNC_PREFIX"] == "models/" and "MODELSYNC_TRUST_KEY" in seed_env
    # Resolved at synth: nothing named, so the catalog's enabled entries (the union of every app's models otherwise).
    assert seed_env["MODELSYNC_SEED_ONLY"] == "SEG_M2F_GrapheneL,CLS_AMM_GrapheneL,paddleocr"


def test_the_signing_task_signs_with_the_key_and_mirrors_to_the_efs_mirror(s3_built):
    t = s3_built.service
    [sign] = containers(t, "SigningTaskDefinition").values()
    assert sign["Name"] == "sign" and sign["Command"] == ["modelsync", "sign"]
    assert mounts(sign)["/mnt/models"] == ("models", False)
    sign_env = env(sign)
    assert sign_env["MODELSYNC_EFS_ROOT"] == "/mnt/models" and sign_env["MODELSYNC_MIRROR_PINS"] == ""
    assert "Fn::GetStackOutput" in str(sign_env["MODELSYNC_SIGNING_KEY"])
    assert sign_env["MODELSYNC_SIGNING_KEY"] == sign_env["MODELSYNC_TRUST_KEY"]
    task = task_definition(t, "SigningTaskDefinition")
    assert "Fn::GetStackOutput" in str(task["TaskRoleArn"])  # the storage stack's signing role


def test_a_good_seed_starts_the_signing_task_through_the_seed_runner(s3_built):
    t = s3_built.service
    rule = resources(t, "AWS::Events::Rule")[logical_id(t, "AWS::Events::Rule", "^SeedRunnerSignAfterSeed")][
        "Properties"]
    seed_family = task_definition(t, "SeedingTaskDefinition")["Family"]
    assert rule["EventPattern"]["detail"] == {
        "clusterArn": [{"Fn::GetAtt": [logical_id(t, "AWS::ECS::Cluster", "Cluster"), "Arn"]}],
        "lastStatus": ["STOPPED"],
        "taskDefinitionArn": [{"prefix": f"arn:aws:ecs:eu-west-1:111111111111:task-definition/{seed_family}:"}],
        "containers": {"name": ["seed"], "exitCode": [0]}}
    [target] = rule["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": [logical_id(t, "AWS::Lambda::Function", "^SeedRunnerFunction"), "Arn"]}
    assert target["InputTransformer"] == {"InputPathsMap": {"detail-taskArn": "$.detail.taskArn"},
                                          "InputTemplate": '{"sign_after":<detail-taskArn>}'}


def test_seeding_task_caches_under_the_writable_tmp_not_the_read_only_home(s3_built):
    [seed] = containers(s3_built.service, "SeedingTaskDefinition").values()
    assert seed["ReadonlyRootFilesystem"] is True and mounts(seed)["/tmp"][1] is False
    seed_env = env(seed)
    for variable in ("HOME", "XDG_CACHE_HOME", "HF_HOME"):
        assert str(seed_env[variable]).startswith("/tmp/"), variable


def test_seed_runner_function_matches_the_contract(s3_built):
    t = s3_built.service
    props = resources(t, "AWS::Lambda::Function")[logical_id(t, "AWS::Lambda::Function", "^SeedRunnerFunction")][
        "Properties"]
    assert props["Runtime"] == "python3.14" and props["Handler"] == "handler.handler"
    variables = props["Environment"]["Variables"]
    assert set(variables) == {"CLUSTER_ARN", "TASK_DEFINITION_ARN", "SUBNET_IDS", "SECURITY_GROUP_IDS",
                              "CONTAINER_NAME", "LOG_GROUP_NAME", "LOG_STREAM_PREFIX", "CATALOG_NAMES",
                              "SIGN_TASK_DEFINITION_ARN", "SIGN_CONTAINER_NAME", "SIGN_LOG_GROUP_NAME",
                              "SIGN_LOG_STREAM_PREFIX"}
    assert (variables["SIGN_CONTAINER_NAME"], variables["SIGN_LOG_STREAM_PREFIX"]) == ("sign", "sign")
    assert (variables["CONTAINER_NAME"], variables["LOG_STREAM_PREFIX"]) == ("seed", "seed")
    # Every catalog entry (enabled or not: `--only` may name any), so typos are refused before RunTask.
    assert variables["CATALOG_NAMES"].split(",") == list(load_catalog(FIXTURE_CATALOG).names)
    seed_task = logical_id(t, "AWS::ECS::TaskDefinition", "SeedingTaskDefinition")
    assert variables["TASK_DEFINITION_ARN"] == {"Ref": seed_task}
    own_logs = props["LoggingConfig"]["LogGroup"]["Ref"]
    assert resources(t, "AWS::Logs::LogGroup")[own_logs]["Properties"]["RetentionInDays"] == 30
    seed_logs = logical_id(t, "AWS::Logs::LogGroup", "SeedingLogs")
    assert variables["LOG_GROUP_NAME"] == {"Ref": seed_logs}


def test_missing_seed_runner_code_is_a_one_line_error(tmp_path):
    with pytest.raises(ModelDeliveryError, match=r"^the seed runner's code .*handler.py is missing: restore lambdas/seed_runner"):
        build_app({}, seed_runner_dir=tmp_path)


def test_seed_runner_role_can_only_start_the_seeding_and_signing_tasks(s3_built):
    t = s3_built.service
    by_sid = {s["Sid"]: s for s in statements(s3_built, "SeedRunnerRole")}
    assert set(by_sid) == {"RunSeedingTasks", "PassSeedingRoles", "TagSeedingTaskOnCreate", "WriteOwnLogs",
                           "SendToDeadLetterQueue", "EncryptForDeadLetterQueue", "DecryptOwnEnvironment"}
    tasks = [{"Ref": logical_id(t, "AWS::ECS::TaskDefinition", f"^{name}TaskDefinition[0-9A-F]")}
             for name in ("Seeding", "Signing")]
    cluster = logical_id(t, "AWS::ECS::Cluster", "Cluster")
    assert by_sid["RunSeedingTasks"]["Action"] == "ecs:RunTask"
    assert by_sid["RunSeedingTasks"]["Resource"] == tasks
    assert by_sid["RunSeedingTasks"]["Condition"] == {"ArnEquals": {"ecs:cluster": {"Fn::GetAtt": [cluster, "Arn"]}}}
    passed = by_sid["PassSeedingRoles"]["Resource"]
    # The two task roles live in the storage stack (beside the key and bucket that trust them).
    storage_roles = [storage_value(s3_built, r) for r in passed if "Fn::GetStackOutput" in r]
    assert storage_roles == [{"Fn::GetAtt": [logical_id(s3_built.storage, "AWS::IAM::Role", f"^{n}Role"), "Arn"]}
                             for n in ("Seeding", "Signing")]
    assert {r["Fn::GetAtt"][0] for r in passed if "Fn::GetAtt" in r} == {
        logical_id(t, "AWS::IAM::Role", f"^{n}TaskDefinitionExecutionRole[0-9A-F]") for n in ("Seeding", "Signing")}
    assert by_sid["TagSeedingTaskOnCreate"]["Condition"] == {"StringEquals": {"ecs:CreateAction": "RunTask"}}
    runner_logs = logical_id(t, "AWS::Logs::LogGroup", "SeedRunnerLogs")
    assert by_sid["WriteOwnLogs"]["Resource"] == {"Fn::GetAtt": [runner_logs, "Arn"]}


def test_auto_seed_only_when_enabled(s3_built):
    assert not resources(s3_built.service, "Custom::AWS")


def test_auto_seed_invokes_the_runner_asynchronously_keyed_by_the_catalog(efs_built):
    t = efs_built.service
    props = only(t, "Custom::AWS")["Properties"]
    create = props["Create"]
    text = json.dumps(create)
    fingerprint = settings_for({"apps.demo.delivery_mode": "efs"}).seed_fingerprint
    assert f"seed-{fingerprint}" in text
    assert '\\"InvocationType\\":\\"Event\\"' in text and '\\"Payload\\":\\"{}\\"' in text
    runner = logical_id(t, "AWS::Lambda::Function", "SeedRunnerFunction")
    policy = [p for key, p in resources(t, "AWS::IAM::Policy").items() if key.startswith("AutoSeedInvoke")]
    assert [s["Resource"] for s in policy[0]["Properties"]["PolicyDocument"]["Statement"]] == [
        {"Fn::GetAtt": [runner, "Arn"]}]


def test_auto_seed_invokes_only_on_create_so_a_rollback_starts_no_second_seed(efs_built):
    """A changed fingerprint is a new logical id: CloudFormation creates it (invoke) and deletes the old one
    at cleanup; a rollback deletes the new one and leaves the old one untouched. Neither an Update nor a
    Delete event makes a call."""
    t = efs_built.service
    [(resource_id, resource)] = resources(t, "Custom::AWS").items()
    fingerprint = settings_for({"apps.demo.delivery_mode": "efs"}).seed_fingerprint
    assert resource_id.startswith(f"AutoSeedInvoke{fingerprint[:16]}")
    assert "Create" in resource["Properties"]
    assert "Update" not in resource["Properties"] and "Delete" not in resource["Properties"]


def test_auto_seed_waits_for_the_seeding_and_signing_roles_and_their_policies(efs_built):
    # Its first invoke can start the seeding task, then the signing task, during the same deploy. The task roles
    # are in the storage stack, which deploys first; the execution roles are here.
    t = efs_built.service
    [depends_on] = [r.get("DependsOn", []) for r in resources(t, "Custom::AWS").values()]
    for name in ("Seeding", "Signing"):
        for pattern in (f"^{name}TaskDefinitionExecutionRole[0-9A-F]", f"^{name}TaskDefinitionExecutionRoleDefaultPolicy"):
            assert logical_id(t, "AWS::IAM::Role" if not pattern.endswith("Policy") else "AWS::IAM::Policy",
                              pattern) in depends_on, pattern


# ---- outputs and assets -------------------------------------------------------------------------

def test_outputs_carry_the_contract_keys(s3_built):
    outputs = s3_built.service.find_outputs("*")
    assert CONTRACT_OUTPUTS <= set(outputs)
    assert outputs["SeedContainerName"]["Value"] == "seed" and outputs["SeedLogStreamPrefix"]["Value"] == "seed"
    assert {"PrivateSubnetIds", "SeedSecurityGroupId", "ModelsAccessPointId"} <= set(outputs)
    assert outputs["Apps"]["Value"] == "demo"
    per_app = {"AppDemoServiceName", "AppDemoDeliveryMode", "AppDemoModels", "AppDemoTaskDefinitionArn",
               "AppDemoSecurityGroupId"}
    assert per_app <= set(outputs) and "AppDemoUrl" not in outputs  # no ingress, no URL
    assert outputs["AppDemoModels"]["Value"] == "SEG_M2F_GrapheneL,CLS_AMM_GrapheneL,paddleocr"


def test_image_assets_exclude_tests_and_caches_and_seed_with_paddleocr(tmp_path):
    container = tmp_path / "container"
    (container / "pkg" / "__pycache__").mkdir(parents=True)
    (container / "tests").mkdir()
    (container / "Dockerfile").write_text("FROM scratch\n")
    (container / "pkg" / "code.py").write_text("x = 1\n")
    (container / "pkg" / "__pycache__" / "code.cpython-311.pyc").write_bytes(b"\0")
    (container / "tests" / "test_code.py").write_text("")
    outdir = tmp_path / "out"
    app, _ = build_app({}, outdir=outdir, container_dir=container)
    app.synth()
    manifest = json.loads((outdir / "ModelDelivery-dev-Service.assets.json").read_text())
    images = list(manifest["dockerImages"].values())
    assert sorted(json.dumps(i["source"].get("dockerBuildArgs", {})) for i in images) == [
        "{\"WITH_PADDLEOCR\": \"1\"}", "{}"]
    for image in images:
        # Built for the task definitions' X86_64 platform, also from an ARM workstation.
        assert image["source"]["platform"] == "linux/amd64"
        staged = outdir / image["source"]["directory"]
        files = sorted(str(p.relative_to(staged)) for p in staged.rglob("*") if p.is_file())
        assert files == ["Dockerfile", "pkg/code.py"]


def test_asset_images_without_a_dockerfile_are_a_one_line_settings_error(tmp_path):
    with pytest.raises(ModelDeliveryError, match=r"^setting 'image_source' = 'asset' builds the image from .* no Dockerfile"):
        build_app({}, container_dir=tmp_path)


def test_log_retention_and_tags_follow_the_stage(s3_built, prod_built):
    for built, days, stage in ((s3_built, 30, "dev"), (prod_built, 365, "prod")):
        for template in (built.network, built.service):
            groups = resources(template, "AWS::Logs::LogGroup").values()
            assert groups and {g["Properties"]["RetentionInDays"] for g in groups} == {days}
        for template in (built.network, built.storage, built.service):
            for type_ in ("AWS::S3::Bucket", "AWS::EFS::FileSystem", "AWS::ECS::Cluster", "AWS::IAM::Role"):
                for key, resource in resources(template, type_).items():
                    if key.startswith("CustomVpcRestrictDefaultSG"):
                        continue  # CDK's provider role is a raw CfnResource that tags do not reach
                    tags = resource["Properties"].get("Tags") or resource["Properties"].get("FileSystemTags")
                    pairs = {(t["Key"], t["Value"]) for t in tags}
                    assert {("project", "model-delivery"), ("stage", stage)} <= pairs, type_


@pytest.mark.parametrize("stack, role", [("service", "DemoTaskRole"), ("storage", "^SeedingRole"),
                                         ("storage", "^SigningRole")])
def test_task_roles_trust_only_ecs_tasks_of_this_account(s3_built, stack, role):
    t = getattr(s3_built, stack)
    [statement] = resources(t, "AWS::IAM::Role")[logical_id(t, "AWS::IAM::Role", role)]["Properties"][
        "AssumeRolePolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "ecs-tasks.amazonaws.com"}
    assert statement["Condition"] == {"ArnLike": {"aws:SourceArn": "arn:aws:ecs:eu-west-1:111111111111:*"},
                                      "StringEquals": {"aws:SourceAccount": "111111111111"}}
