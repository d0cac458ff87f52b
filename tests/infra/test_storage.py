"""Storage stack: KMS key, models bucket, access-log bucket and the EFS mirror (the stateful part)."""

from __future__ import annotations

import pytest
from aws_cdk.assertions import Match

from .helpers import Built, logical_id, only, resources

STATEFUL = ("AWS::KMS::Key", "AWS::S3::Bucket", "AWS::EFS::FileSystem", "AWS::ECR::Repository")


@pytest.fixture(scope="module")
def destroy_built() -> Built:
    return Built({"removal_policy": "destroy"})


def models_bucket(t) -> tuple[str, dict]:
    key = logical_id(t, "AWS::S3::Bucket", "BucketModels")
    return key, resources(t, "AWS::S3::Bucket")[key]["Properties"]


def test_key_rotates(s3_built):
    s3_built.storage.has_resource_properties("AWS::KMS::Key", {"EnableKeyRotation": True})


def test_stateful_resources_are_retained_by_default_but_not_orphaned_by_a_failed_create(s3_built):
    """RetainExceptOnCreate: kept on a stack delete and on replacement, deleted when the first create fails."""
    for type_ in STATEFUL:
        found = resources(s3_built.storage, type_)
        assert found, type_
        for resource in found.values():
            assert (resource["DeletionPolicy"], resource["UpdateReplacePolicy"]) == ("RetainExceptOnCreate",
                                                                                     "Retain"), type_
    s3_built.storage.has_resource("AWS::EFS::FileSystem", Match.object_like(
        {"DeletionPolicy": "RetainExceptOnCreate", "UpdateReplacePolicy": "Retain"}))


def test_every_stateful_resource_is_in_the_storage_stack(s3_built):
    """The service stack holds nothing whose loss loses data (and no repository its own tasks pull from).
    The network stack's one exception is the flow logs' key (the flow log sits beside its VPC, which
    deploys before the store key exists): it is kept the same way as the storage stack's."""
    for type_ in STATEFUL:
        assert not resources(s3_built.service, type_), type_
        network = resources(s3_built.network, type_)
        if type_ == "AWS::KMS::Key":
            assert [k for k in network if not k.startswith("FlowLogsKey")] == []
            for key in network.values():
                assert (key["DeletionPolicy"], key["UpdateReplacePolicy"]) == ("RetainExceptOnCreate", "Retain")
        else:
            assert not network, type_


def test_removal_policy_destroy_is_honoured(destroy_built):
    for type_ in STATEFUL:
        for resource in resources(destroy_built.storage, type_).values():
            assert resource["DeletionPolicy"] == "Delete", type_


def test_termination_protection_only_for_prod(s3_built, prod_built):
    assert not s3_built.delivery.storage.termination_protection
    assert prod_built.delivery.storage.termination_protection
    assert prod_built.delivery.service.termination_protection


def test_models_bucket_is_encrypted_private_versioned_and_owner_enforced(s3_built):
    t = s3_built.storage
    key_id = logical_id(t, "AWS::KMS::Key", "^Key")
    _, props = models_bucket(t)
    assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"] == [{
        "BucketKeyEnabled": True,
        "ServerSideEncryptionByDefault": {"KMSMasterKeyID": {"Fn::GetAtt": [key_id, "Arn"]},
                                          "SSEAlgorithm": "aws:kms"}}]
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True, "BlockPublicPolicy": True, "IgnorePublicAcls": True, "RestrictPublicBuckets": True}
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    assert props["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}


def test_models_bucket_logs_to_the_separate_log_bucket(s3_built):
    t = s3_built.storage
    _, props = models_bucket(t)
    log_bucket = logical_id(t, "AWS::S3::Bucket", "BucketAccessLogs")
    assert props["LoggingConfiguration"] == {"DestinationBucketName": {"Ref": log_bucket},
                                             "LogFilePrefix": "models-bucket/"}
    log_props = resources(t, "AWS::S3::Bucket")[log_bucket]["Properties"]
    assert log_props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"] \
        == {"SSEAlgorithm": "AES256"}  # the only encryption S3 server access logging delivers to


def test_models_bucket_lifecycle_expires_noncurrent_versions_and_aborts_uploads(s3_built):
    _, props = models_bucket(s3_built.storage)
    assert props["LifecycleConfiguration"]["Rules"] == [{
        "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7},
        "Id": "noncurrent-and-incomplete",
        "NoncurrentVersionExpiration": {"NoncurrentDays": 30},
        "Status": "Enabled"}]


@pytest.mark.parametrize("bucket", ["BucketModels", "BucketAccessLogs"])
def test_buckets_deny_requests_without_tls(s3_built, bucket):
    t = s3_built.storage
    bucket_id = logical_id(t, "AWS::S3::Bucket", bucket)
    policies = [p for p in resources(t, "AWS::S3::BucketPolicy").values()
                if p["Properties"]["Bucket"] == {"Ref": bucket_id}]
    assert len(policies) == 1
    statements = policies[0]["Properties"]["PolicyDocument"]["Statement"]
    tls = [s for s in statements if s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}]
    assert len(tls) == 1 and tls[0]["Effect"] == "Deny" and tls[0]["Action"] == "s3:*"
    assert tls[0]["Principal"] == {"AWS": "*"}


def test_file_system_is_encrypted_elastic_tiered_and_backed_up(s3_built):
    t = s3_built.storage
    key_id = logical_id(t, "AWS::KMS::Key", "^Key")
    props = only(t, "AWS::EFS::FileSystem")["Properties"]
    assert props["Encrypted"] is True
    assert props["KmsKeyId"] == {"Fn::GetAtt": [key_id, "Arn"]}
    assert props["ThroughputMode"] == "elastic"
    assert props["LifecyclePolicies"] == [{"TransitionToIA": "AFTER_30_DAYS"},
                                          {"TransitionToPrimaryStorageClass": "AFTER_1_ACCESS"}]
    assert props["BackupPolicy"] == {"Status": "ENABLED"}


def test_file_system_policy_only_denies(s3_built):
    """Ours replaces CDK's generated policy, which allowed any principal ClientWrite/ClientRootAccess."""
    statements = only(s3_built.storage, "AWS::EFS::FileSystem")["Properties"]["FileSystemPolicy"]["Statement"]
    assert {s["Effect"] for s in statements} == {"Deny"}
    by_sid = {s["Sid"]: s for s in statements}
    assert by_sid["DenyWithoutTls"]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert set(by_sid["DenyWithoutTls"]["Action"]) == {
        "elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite", "elasticfilesystem:ClientRootAccess"}
    assert by_sid["DenyRootAccess"]["Action"] == "elasticfilesystem:ClientRootAccess"
    assert "Condition" not in by_sid["DenyRootAccess"]
    assert by_sid["DenyWritesOutsideAccessPoints"]["Condition"] == {
        "Null": {"elasticfilesystem:AccessPointArn": "true"}}
    assert by_sid["DenyOutsideMountTargets"]["Condition"] == {
        "Bool": {"elasticfilesystem:AccessedViaMountTarget": "false"}}
    assert all(s["Principal"] == {"AWS": "*"} for s in statements)



def test_runbook_fixes_for_the_mirror_work_with_the_file_system_policy(s3_built):
    """The runbook's EFS advice must match the policy above: without an access point only writes are denied
    (a mount is not), nobody is root (so nobody can chown), and an access point's creation owner applies
    only to a directory it creates."""
    from .helpers import PROJECT

    statements = only(s3_built.storage, "AWS::EFS::FileSystem")["Properties"]["FileSystemPolicy"]["Statement"]
    without_access_point = [s for s in statements if "elasticfilesystem:AccessPointArn" in str(s.get("Condition"))]
    assert [s["Action"] for s in without_access_point] == ["elasticfilesystem:ClientWrite"]
    runbook = (PROJECT / "docs" / "runbook.md").read_text()
    for wrong in ("refuses any mount without TLS, or not through an access point",
                  "from a task that mounts the file system without the access point",
                  "or recreate the access point"):
        assert wrong not in runbook
    assert "### Mirror directory owned by another uid" in runbook
    assert "MIRROR_PATH" in runbook and "model_delivery/mirror.py" in runbook

def test_mount_targets_are_exactly_the_private_subnets_behind_the_efs_group(s3_built):
    network, storage = s3_built.network, s3_built.storage
    private = {key for key, subnet in resources(network, "AWS::EC2::Subnet").items()
               if {"Key": "aws-cdk:subnet-type", "Value": "Private"} in subnet["Properties"]["Tags"]}
    published = {name: output["Value"] for name, output in network.find_outputs("*").items()}
    efs_sg = logical_id(network, "AWS::EC2::SecurityGroup", "SecurityGroupsFileSystem")
    mounted = []
    for target in resources(storage, "AWS::EFS::MountTarget").values():
        props = target["Properties"]
        # Cross-stack values arrive as Fn::GetStackOutput of an output the network stack publishes.
        subnet_output = props["SubnetId"]["Fn::GetStackOutput"]["OutputName"]
        mounted.append(published[subnet_output]["Ref"])
        [sg] = props["SecurityGroups"]
        assert published[sg["Fn::GetStackOutput"]["OutputName"]] == {"Fn::GetAtt": [efs_sg, "GroupId"]}
    assert sorted(mounted) == sorted(private)


def test_access_point_runs_as_the_image_user_under_models(s3_built):
    props = only(s3_built.storage, "AWS::EFS::AccessPoint")["Properties"]
    assert props["PosixUser"] == {"Uid": "10001", "Gid": "10001"}
    assert props["RootDirectory"] == {"Path": "/models", "CreationInfo": {
        "OwnerUid": "10001", "OwnerGid": "10001", "Permissions": "755"}}
