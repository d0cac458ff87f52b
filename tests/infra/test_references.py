"""Cross-stack references: a producer resource that CloudFormation replaces changes its consumers' templates.

The references are weak (`Fn::GetStackOutput`), resolved only when a consumer deploys, and the CLI skips an
unchanged template: unless the consumer's template changes where it uses the value, `make deploy` leaves it
on the replaced resource (stacks/replacement.py). Each case edits one replacing property through the L1
escape hatch, as a code change would, and compares the consumer's property with an unchanged build.
"""

from __future__ import annotations

import pytest
from aws_cdk import aws_efs as efs
from aws_cdk.assertions import Template

from .helpers import Built, build_app, logical_id, resources, task_definition


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
def before() -> Built:
    return Built({})


@pytest.fixture(scope="module")
def after() -> Changed:
    return Changed()


def published(producer: Template, reference: dict) -> dict:
    """What a consumer's `Fn::GetStackOutput` reads: the value of that output in the producer's template."""
    return producer.to_json()["Outputs"][reference["Fn::GetStackOutput"]["OutputName"]]["Value"]


def mount_target_groups(built) -> list[dict]:
    return [group for target in resources(built.storage, "AWS::EFS::MountTarget").values()
            for group in target["Properties"]["SecurityGroups"]]


def seeding_access_point(built) -> dict:
    volumes = task_definition(built.service, "SeedingTaskDefinition")["Volumes"]
    (config,) = [v["EFSVolumeConfiguration"] for v in volumes if "EFSVolumeConfiguration" in v]
    return config["AuthorizationConfig"]["AccessPointId"]


def service_role_policies(built) -> list[dict]:
    role = logical_id(built.service, "AWS::IAM::Role", "DemoTaskRole")
    return resources(built.service, "AWS::IAM::Role")[role]["Properties"]["ManagedPolicyArns"]


def test_a_replaced_security_group_changes_the_mount_targets_that_use_it(before, after):
    old_id = logical_id(before.network, "AWS::EC2::SecurityGroup", "FileSystem")
    new_id = logical_id(after.network, "AWS::EC2::SecurityGroup", "FileSystem")
    assert new_id != old_id  # CloudFormation creates the new group next to the old one
    assert mount_target_groups(before) != mount_target_groups(after)
    for group in mount_target_groups(after):
        assert published(after.network, group) == {"Fn::GetAtt": [new_id, "GroupId"]}
    # The NFS rules follow the new group (same stack), so the mount targets land on a group that has them.
    rules = resources(after.network, "AWS::EC2::SecurityGroupIngress").values()
    assert [r for r in rules if r["Properties"]["GroupId"] == {"Fn::GetAtt": [new_id, "GroupId"]}]


def test_a_replaced_access_point_changes_the_task_definitions_that_mount_it(before, after):
    assert seeding_access_point(before) != seeding_access_point(after)
    new_id = logical_id(after.storage, "AWS::EFS::AccessPoint", "ModelsAccessPoint")
    assert published(after.storage, seeding_access_point(after)) == {"Ref": new_id}


def test_a_replaced_managed_policy_changes_the_roles_that_attach_it(before, after):
    assert service_role_policies(before) != service_role_policies(after)
    new_id = logical_id(after.storage, "AWS::IAM::ManagedPolicy", "ModelsReadAccess")
    assert [published(after.storage, arn) for arn in service_role_policies(after)] == [{"Ref": new_id}]


def test_unreplaced_resources_keep_their_logical_ids(before, after):
    """Only what was changed is renamed: the other groups, policies and every stateful resource stay put."""
    for stack, type_ in (("network", "AWS::EC2::SecurityGroup"), ("storage", "AWS::IAM::ManagedPolicy"),
                         ("storage", "AWS::S3::Bucket"), ("storage", "AWS::KMS::Key"),
                         ("storage", "AWS::EFS::FileSystem"), ("storage", "AWS::ECR::Repository")):
        kept = set(resources(getattr(before, stack), type_)) & set(resources(getattr(after, stack), type_))
        changed = {"AWS::EC2::SecurityGroup": 1, "AWS::IAM::ManagedPolicy": 1}.get(type_, 0)
        assert len(kept) == len(resources(getattr(before, stack), type_)) - changed, type_
