"""Cross-stack references and replacements.

`cdk deploy --all` deploys Network, then Storage, then Service, each finishing its cleanup before the next starts:
a producer stack that replaces a resource deletes the old one while the consumer's running tasks still use it. So
what a setting can replace lives in the stack of what uses it, and what crosses stacks is never replaced by a
setting (first part). A code change to one of those fixed properties still replaces it; then the consumers must at
least follow on the next deploy (second part: stacks/replacement.py renames it, so their templates change).
"""

from __future__ import annotations

import json

import pytest
from aws_cdk import aws_efs as efs
from aws_cdk.assertions import Template

from .helpers import Built, build_app, logical_id, resources, task_definition

# Per type, the properties whose change makes CloudFormation replace the resource ("Update requires:
# Replacement" in the CloudFormation resource reference). A cross-stack reference to a type not listed here fails
# the test below: add the type with its properties (and make sure no setting changes them).
REPLACING = {
    "AWS::EC2::VPC": ("CidrBlock", "InstanceTenancy"),
    "AWS::EC2::Subnet": ("AvailabilityZone", "CidrBlock", "VpcId"),
    "AWS::EC2::SecurityGroup": ("GroupDescription", "GroupName", "VpcId"),
    "AWS::EFS::FileSystem": ("AvailabilityZoneName", "Encrypted", "KmsKeyId", "PerformanceMode"),
    "AWS::EFS::AccessPoint": ("FileSystemId", "PosixUser", "RootDirectory"),
    "AWS::S3::Bucket": ("BucketName", "ObjectLockEnabled"),
    "AWS::KMS::Key": ("KeySpec", "KeyUsage", "MultiRegion"),
    "AWS::ECR::Repository": ("EncryptionConfiguration", "RepositoryName"),
    "AWS::IAM::ManagedPolicy": ("Description", "ManagedPolicyName", "Path"),
    "AWS::IAM::Role": ("Path", "RoleName"),
}
# What crosses stacks although CloudFormation could replace it, and why no setting does: their replacing
# properties are constants of the code.
FIXED_ACROSS_STACKS = {
    r"^SecurityGroupsFileSystem": "the mirror's group: its description is fixed (stacks/network.py)",
    r"^MirrorFileSystemModelsAccessPoint": "the mirror's access point: root /models and uid 10001 are constants",
    r"^Models(Read|Write|Stage|Sign)Access": "the managed policies: fixed descriptions, generated names",
    r"^(Seeding|Signing|BucketFilesSync)Role": "the publishing roles and S3 Files' role: generated names, no path",
}
# Settings changed together in each variant (every one a setting a team changes on a live stage).
VARIANTS = {
    "efs, public ingress, retention, auto-seed, reservations": {
        "apps.demo.delivery_mode": "efs", "apps.demo.ingress": "public",
        "apps.demo.certificate_arn": "arn:aws:acm:eu-west-1:111111111111:certificate/0a1b2c3d-4e5f-6789-abcd-ef0123456789",
        "log_retention_days": "365", "seed_on_deploy": "true", "lambda_reserved_concurrency": "true"},
    "internal ingress, destroy, publishers, ecr image, protection, nat, email, seed selection": {
        "apps.demo.ingress": "internal", "removal_policy": "destroy",
        "publisher_role_arns": "arn:aws:iam::111111111111:role/Ops", "image_source": "ecr", "image_tag": "v1",
        "termination_protection": "true", "nat_gateways": "2", "alarm_email": "ops@example.com",
        "seed_models": "SEG_M2F_Synthetic_Data", "apps.demo.ephemeral_storage_gib": "40"},
    "two apps": {"apps": json.dumps({"seg": {"models": ["SEG_M2F_GrapheneL"]},
                                     "ocr": {"models": ["paddleocr"], "delivery_mode": "efs", "layout": "paddlex"}})},
    "an app mounting the bucket, waiting longer, hashing every byte": {
        "apps": json.dumps({"seg": {"models": ["SEG_M2F_GrapheneL"], "delivery_mode": "s3files",
                                    "files_wait_seconds": 300, "verify_every_byte": True}})},
}


def cross_stack_producers(built: Built) -> set[tuple[str, str]]:
    """(producer stack, logical id) of every resource another stack reads through Fn::GetStackOutput."""
    templates = {"Network": built.network.to_json(), "Storage": built.storage.to_json(),
                 "Service": built.service.to_json()}
    names = {stack.stack_name: part for part, stack in zip(("Network", "Storage", "Service"), built.delivery.stacks)}
    found: set[tuple[str, str]] = set()

    def walk(node) -> None:
        if isinstance(node, dict):
            if "Fn::GetStackOutput" in node:
                ref = node["Fn::GetStackOutput"]
                producer = names[ref["StackName"]]
                value = templates[producer]["Outputs"][ref["OutputName"]]["Value"]
                found.add((producer, value["Ref"] if "Ref" in value else value["Fn::GetAtt"][0]))
            for child in node.values():
                walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    for template in templates.values():
        walk(template["Resources"])
    return found


def replacing(built: Built, stack: str, logical: str) -> tuple[str, str]:
    resource = getattr(built, stack.lower()).to_json()["Resources"][logical]
    assert resource["Type"] in REPLACING, f"{stack}/{logical} ({resource['Type']}) is read by another stack: add " \
                                          "its type to REPLACING with the properties that replace it"
    props = {name: resource["Properties"].get(name) for name in REPLACING[resource["Type"]]}
    return resource["Type"], json.dumps(props, sort_keys=True)


@pytest.fixture(scope="module")
def variants(s3_built) -> dict[str, Built]:
    return {"defaults": s3_built, **{name: Built(overrides) for name, overrides in VARIANTS.items()}}


def test_no_setting_replaces_anything_another_stack_uses(variants):
    """For every resource read across stacks, its replacing properties are the same whatever the settings."""
    seen: dict[tuple[str, str], tuple[str, str, str]] = {}
    for variant, built in variants.items():
        for stack, logical in cross_stack_producers(built):
            type_, props = replacing(built, stack, logical)
            first = seen.setdefault((stack, logical), (variant, type_, props))
            assert first[2] == props, (f"{stack}/{logical} ({type_}) is replaced between '{first[0]}' and "
                                       f"'{variant}' while another stack uses it: keep it with its users, or fix "
                                       "the property")


def test_what_could_be_replaced_and_still_crosses_stacks_is_a_known_fixed_resource(variants):
    import re

    stateless = {"AWS::EC2::SecurityGroup", "AWS::EFS::AccessPoint", "AWS::IAM::ManagedPolicy", "AWS::IAM::Role"}
    for built in variants.values():
        for stack, logical in cross_stack_producers(built):
            type_, _ = replacing(built, stack, logical)
            if type_ in stateless:
                reasons = [why for pattern, why in FIXED_ACROSS_STACKS.items() if re.search(pattern, logical)]
                assert reasons, f"{stack}/{logical} ({type_}) crosses stacks: move it beside its users"


def test_every_group_a_setting_can_replace_is_used_only_in_its_own_stack(variants):
    """The apps' groups, the load balancers' and the seeding tasks' group are in the service stack with their tasks
    and rules: their descriptions follow settings (an app's mode), and one stack update replaces them safely."""
    for built in variants.values():
        crossing = {logical for _, logical in cross_stack_producers(built)}
        for logical in resources(built.service, "AWS::EC2::SecurityGroup"):
            assert logical not in crossing
        assert set(resources(built.network, "AWS::EC2::SecurityGroup")) == {
            logical_id(built.network, "AWS::EC2::SecurityGroup", "SecurityGroupsFileSystem")}


# ---- a code change that replaces a fixed resource: its consumers follow ----------------------------------------


class Changed:
    """The default configuration with three producer resources changed so that CloudFormation replaces them."""

    def __init__(self) -> None:
        self.app, delivery = build_app({})
        file_system_group = delivery.network.file_system_security_group.node.default_child
        file_system_group.group_description = "EFS model mirror: NFS from the tasks (description edited)"
        access_point = delivery.storage.store.require_mirror("the test").access_point.node.default_child
        # The runbook's fix for a mirror directory owned by another uid: a fresh root directory.
        access_point.root_directory = efs.CfnAccessPoint.RootDirectoryProperty(
            path="/models-2", creation_info=efs.CfnAccessPoint.CreationInfoProperty(
                owner_uid="10001", owner_gid="10001", permissions="755"))
        read_policy = delivery.storage.store.read_policy.node.default_child
        read_policy.description = "Read the models prefix (description edited)"
        self.network = Template.from_stack(delivery.network)
        self.storage = Template.from_stack(delivery.storage)
        self.service = Template.from_stack(delivery.service)


@pytest.fixture(scope="module")
def after() -> Changed:
    return Changed()


def published(producer: Template, reference: dict) -> dict:
    """What a consumer's `Fn::GetStackOutput` reads: the value of that output in the producer's template."""
    return producer.to_json()["Outputs"][reference["Fn::GetStackOutput"]["OutputName"]]["Value"]


def mount_target_groups(built) -> list[dict]:
    return [group for target in resources(built.storage, "AWS::EFS::MountTarget").values()
            for group in target["Properties"]["SecurityGroups"]]


def signing_access_point(built) -> dict:
    volumes = task_definition(built.service, "SigningTaskDefinition")["Volumes"]
    (config,) = [v["EFSVolumeConfiguration"] for v in volumes if "EFSVolumeConfiguration" in v]
    return config["AuthorizationConfig"]["AccessPointId"]


def service_role_policies(built) -> list[dict]:
    role = logical_id(built.service, "AWS::IAM::Role", "DemoTaskRole")
    return resources(built.service, "AWS::IAM::Role")[role]["Properties"]["ManagedPolicyArns"]


def test_a_replaced_security_group_changes_the_mount_targets_and_rules_that_use_it(s3_built, after):
    old_id = logical_id(s3_built.network, "AWS::EC2::SecurityGroup", "FileSystem")
    new_id = logical_id(after.network, "AWS::EC2::SecurityGroup", "FileSystem")
    assert new_id != old_id  # CloudFormation creates the new group next to the old one
    assert mount_target_groups(s3_built) != mount_target_groups(after)
    for group in mount_target_groups(after):
        assert published(after.network, group) == {"Fn::GetAtt": [new_id, "GroupId"]}
    # The NFS rules (in the service stack, with the seeding tasks' group) follow the new group.
    rules = [r["Properties"] for r in resources(after.service, "AWS::EC2::SecurityGroupIngress").values()
             if "Fn::GetStackOutput" in json.dumps(r["Properties"]["GroupId"])]
    assert rules and all(published(after.network, r["GroupId"]) == {"Fn::GetAtt": [new_id, "GroupId"]} for r in rules)


def test_a_replaced_access_point_changes_the_task_definitions_that_mount_it(s3_built, after):
    assert signing_access_point(s3_built) != signing_access_point(after)
    new_id = logical_id(after.storage, "AWS::EFS::AccessPoint", "ModelsAccessPoint")
    assert published(after.storage, signing_access_point(after)) == {"Ref": new_id}


def test_a_replaced_managed_policy_changes_the_roles_that_attach_it(s3_built, after):
    assert service_role_policies(s3_built) != service_role_policies(after)
    new_id = logical_id(after.storage, "AWS::IAM::ManagedPolicy", "ModelsReadAccess")
    assert [published(after.storage, arn) for arn in service_role_policies(after)] == [{"Ref": new_id}]


def test_unreplaced_resources_keep_their_logical_ids(s3_built, after):
    """Only what was changed is renamed: the other groups, policies and every stateful resource stay put."""
    for stack, type_ in (("network", "AWS::EC2::SecurityGroup"), ("storage", "AWS::IAM::ManagedPolicy"),
                         ("storage", "AWS::S3::Bucket"), ("storage", "AWS::KMS::Key"),
                         ("storage", "AWS::EFS::FileSystem"), ("storage", "AWS::ECR::Repository")):
        kept = set(resources(getattr(s3_built, stack), type_)) & set(resources(getattr(after, stack), type_))
        changed = {"AWS::EC2::SecurityGroup": 1, "AWS::IAM::ManagedPolicy": 1}.get(type_, 0)
        assert len(kept) == len(resources(getattr(s3_built, stack), type_)) - changed, type_
