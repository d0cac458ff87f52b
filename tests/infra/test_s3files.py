"""Delivery mode s3files: the README's app that mounts the bucket itself (Amazon S3 Files), beside the demo app in
s3 mode. The file system exists only while an app uses the mode, in the apps' stack; its role is the store's; the
task mounts it read-only in both containers; nobody gets a write; the file system and its role cannot write; the
start check's settings."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
from cdk_nag import AwsSolutionsChecks

from model_delivery.errors import ModelDeliveryError
from model_delivery.modes import MODES

from .helpers import (PROJECT, S3FILES_APP, actions, containers, env, logical_id, mounts, resources, settings_for,
                      statements, storage_value, task_definition)

SEG, DEMO = "^SegTaskDefinition", "^DemoTaskDefinition"
WRITES = ("s3:Put", "s3:Delete", "s3:Abort", "s3:Restore", "s3:Replicate", "s3files:ClientWrite",
          "s3files:ClientRootAccess", "s3:*", "*")
S3FILES_TYPES = ("AWS::S3Files::FileSystem", "AWS::S3Files::MountTarget", "AWS::S3Files::FileSystemPolicy")


def is_write(action: str) -> bool:
    return any(action == w or (w.endswith(":") is False and action.startswith(w)) for w in WRITES)


def test_the_file_system_exists_only_while_an_app_mounts_the_bucket_beside_those_apps(s3_built, efs_built,
                                                                                     s3files_built):
    for built in (s3_built, efs_built):
        for template in (built.network, built.storage, built.service):
            assert all(not resources(template, t) for t in S3FILES_TYPES)
        assert not [k for k in resources(built.service, "AWS::EC2::SecurityGroup") if k.startswith("BucketFiles")]
    assert all(not resources(s3files_built.storage, t) for t in S3FILES_TYPES)
    fs = resources(s3files_built.service, "AWS::S3Files::FileSystem")
    assert len(fs) == 1
    [props] = [v["Properties"] for v in fs.values()]
    assert props["Prefix"] == "models/"
    storage = s3files_built.storage
    assert storage_value(s3files_built, props["Bucket"]) == {
        "Fn::GetAtt": [logical_id(storage, "AWS::S3::Bucket", "^BucketModels"), "Arn"]}
    assert storage_value(s3files_built, props["KmsKeyId"]) == {
        "Fn::GetAtt": [logical_id(storage, "AWS::KMS::Key", "^Key"), "Arn"]}
    assert storage_value(s3files_built, props["RoleArn"]) == {
        "Fn::GetAtt": [logical_id(storage, "AWS::IAM::Role", "^BucketFilesSyncRole"), "Arn"]}


def test_a_mount_target_in_every_private_subnet_behind_its_own_group(s3files_built):
    targets = [t["Properties"] for t in resources(s3files_built.service, "AWS::S3Files::MountTarget").values()]
    private = {json.dumps(t["SubnetId"], sort_keys=True) for t in targets}
    assert len(targets) == len(private) == 2  # max_azs 2: one per private subnet
    assert all("privateSubnet" in json.dumps(t["SubnetId"]) for t in targets)
    group = logical_id(s3files_built.service, "AWS::EC2::SecurityGroup", "^BucketFilesSecurityGroup")
    assert all(t["SecurityGroups"] == [{"Fn::GetAtt": [group, "GroupId"]}] for t in targets)


def test_nfs_is_open_only_to_the_apps_that_mount_the_bucket(s3files_built):
    group = logical_id(s3files_built.service, "AWS::EC2::SecurityGroup", "^BucketFilesSecurityGroup")
    assert not only_group(s3files_built, "^BucketFilesSecurityGroup").get("SecurityGroupIngress")
    rules = [r["Properties"] for r in resources(s3files_built.service, "AWS::EC2::SecurityGroupIngress").values()
             if r["Properties"]["GroupId"] == {"Fn::GetAtt": [group, "GroupId"]}]
    seg_group = logical_id(s3files_built.service, "AWS::EC2::SecurityGroup", "^SegSecurityGroup")
    assert [r["SourceSecurityGroupId"] for r in rules] == [{"Fn::GetAtt": [seg_group, "GroupId"]}]
    assert rules[0]["ToPort"] == 2049 and rules[0]["IpProtocol"] == "tcp"
    demo = only_group(s3files_built, "^DemoSecurityGroup")
    assert all(rule.get("FromPort") != 2049 for rule in demo.get("SecurityGroupEgress", []))


def only_group(built, pattern):
    return resources(built.service, "AWS::EC2::SecurityGroup")[
        logical_id(built.service, "AWS::EC2::SecurityGroup", pattern)]["Properties"]


def test_both_containers_mount_the_file_system_read_only_at_models(s3files_built):
    volumes = {v["Name"]: v for v in task_definition(s3files_built.service, SEG)["Volumes"]}
    config = volumes["models"]["S3FilesVolumeConfiguration"]
    fs = logical_id(s3files_built.service, "AWS::S3Files::FileSystem", "^BucketFilesFileSystem")
    assert config["FileSystemArn"] == {"Fn::GetAtt": [fs, "FileSystemArn"]}
    assert set(config) == {"FileSystemArn"}
    c = containers(s3files_built.service, SEG)
    assert mounts(c["model-verify"])["/models"] == ("models", True)
    assert mounts(c["app"])["/models"] == ("models", True)
    assert c["model-verify"]["Command"] == ["modelsync", "verify"]
    variables = env(c["model-verify"])
    assert variables["MODELSYNC_STORE"] == "bucket"
    assert variables["MODELSYNC_WAIT_FOR_FILES"] == str(S3FILES_APP["files_wait_seconds"])
    assert "MODELSYNC_DEEP" not in variables
    assert variables["MODELSYNC_LAYOUT"] == "maskterial"
    # The demo app in s3 mode keeps its task-local volume and pull.
    demo_volumes = {v["Name"]: v for v in task_definition(s3files_built.service, DEMO)["Volumes"]}
    assert "S3FilesVolumeConfiguration" not in demo_volumes["models"]
    assert "model-pull" in containers(s3files_built.service, DEMO)


def test_the_task_role_reads_and_mounts_and_writes_nothing(s3files_built):
    found = statements(s3files_built, "^SegTaskRole")
    granted = actions(found)
    assert "s3files:ClientMount" in granted and "s3:GetObject" in granted and "s3:GetObjectVersion" in granted
    assert not [a for a in granted if is_write(a)], granted
    fs = logical_id(s3files_built.service, "AWS::S3Files::FileSystem", "^BucketFilesFileSystem")
    [mount] = [s for s in found if s.get("Sid") == "MountBucketFiles"]
    assert mount["Resource"] == {"Fn::GetAtt": [fs, "FileSystemArn"]}
    assert not [s for s in found if "Condition" not in s and s.get("Resource") == "*"]


def test_the_sync_role_is_trusted_by_s3_files_for_this_account_and_cannot_write(s3files_built):
    storage = s3files_built.storage
    role_id = logical_id(storage, "AWS::IAM::Role", "^BucketFilesSyncRole")
    [trust] = resources(storage, "AWS::IAM::Role")[role_id]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "elasticfilesystem.amazonaws.com"}
    assert trust["Condition"]["StringEquals"] == {"aws:SourceAccount": "111111111111"}
    assert "s3files:eu-west-1:111111111111:file-system/*" in json.dumps(trust["Condition"]["ArnLike"])
    granted = set()
    for policy in resources(storage, "AWS::IAM::Policy").values():
        if {"Ref": role_id} in policy["Properties"]["Roles"]:
            granted |= actions(policy["Properties"]["PolicyDocument"]["Statement"])
    assert {"s3:ListBucket", "s3:GetObject", "kms:Decrypt", "events:PutRule"} <= granted
    assert not [a for a in granted if is_write(a)], granted


def test_the_file_system_policy_denies_plain_nfs_writes_and_root(s3files_built):
    [policy] = [p["Properties"]["Policy"] for p in resources(s3files_built.service,
                                                               "AWS::S3Files::FileSystemPolicy").values()]
    by_sid = {s["Sid"]: s for s in policy["Statement"]}
    assert all(s["Effect"] == "Deny" for s in by_sid.values())
    assert by_sid["DenyWithoutTls"]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert set(by_sid["DenyWritesAndRoot"]["Action"]) == {"s3files:ClientWrite", "s3files:ClientRootAccess"}
    assert "Condition" not in by_sid["DenyWritesAndRoot"]


def test_versions_are_created_once_whatever_the_mode(s3_built, s3files_built):
    for built in (s3_built, s3files_built):
        policy = next(p for k, p in resources(built.storage, "AWS::S3::BucketPolicy").items()
                      if k.startswith("BucketModelsPolicy"))
        [statement] = [s for s in policy["Properties"]["PolicyDocument"]["Statement"]
                       if s.get("Sid") == "VersionsAreCreatedOnce"]
        assert statement["Effect"] == "Deny" and statement["Action"] == "s3:PutObject"
        assert statement["Condition"] == {"Null": {"s3:if-none-match": "true"},
                                          "Bool": {"s3:ObjectCreationOperation": "true"}}
        keys = sorted(json.dumps(r) for r in statement["Resource"])
        assert len(keys) == 2 and "/files/*" in keys[0] + keys[1] and "/manifest.json" in keys[0] + keys[1]


def test_every_stack_is_nag_clean(s3files_built):
    for stack in s3files_built.delivery.stacks:
        report = AwsSolutionsChecks().validate_scope(stack)
        assert report.success, [(v.rule_name, v.violating_resources) for v in report.violations]


def test_the_outputs_name_the_file_system(s3files_built, s3_built):
    assert "BucketFileSystemArn" in s3files_built.service.find_outputs("*")
    assert "BucketFileSystemArn" not in s3_built.service.find_outputs("*")


@pytest.mark.parametrize(("overrides", "message"), [
    ({"apps.demo.verify_every_byte": "true"},
     "setting 'apps.demo.verify_every_byte' = true is not allowed in mode 's3' (each task pulls its models from the "
     "bucket into its own storage: it hashes every byte already); use it with mode 'efs' or 's3files'"),
    ({"apps.demo.delivery_mode": "efs", "apps.demo.files_wait_seconds": "30"},
     "setting 'apps.demo.files_wait_seconds' = 30 is not allowed in mode 'efs': its store never shows a version "
     "before its files; leave it unset, or use mode 's3files'"),
    ({"apps.demo.delivery_mode": "s3files", "apps.demo.files_wait_seconds": "901"},
     "setting 'apps.demo.files_wait_seconds' = 901 is not allowed: use whole seconds from 0 to 900"),
])
def test_start_check_settings_the_mode_cannot_honour_are_one_line(overrides, message):
    with pytest.raises(ModelDeliveryError) as raised:
        settings_for(overrides)
    assert str(raised.value) == message


def test_deep_verification_reaches_the_init_container():
    from .helpers import Built
    built = Built({"apps.demo.delivery_mode": "efs", "apps.demo.verify_every_byte": "true"})
    assert env(containers(built.service, DEMO)["model-verify"])["MODELSYNC_DEEP"] == "true"


def test_nothing_outside_the_registry_tests_a_mode_by_name():
    """A mode is one entry in model_delivery/modes.py: no comparison or membership test against a mode's name
    anywhere else in the library or the stacks."""
    names = set(MODES)
    found = []
    for path in [*Path(PROJECT, "model_delivery").glob("*.py"), *Path(PROJECT, "stacks").rglob("*.py")]:
        if path.name == "modes.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare):
                operands = [node.left, *node.comparators]
                for operand in operands:
                    values = operand.elts if isinstance(operand, (ast.Tuple, ast.List, ast.Set)) else [operand]
                    found += [f"{path.relative_to(PROJECT)}:{node.lineno}" for v in values
                              if isinstance(v, ast.Constant) and v.value in names]
    assert found == []
