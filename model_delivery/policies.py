"""IAM statements written out explicitly (no grant_* helpers: those add wildcard actions such as
s3:GetObject* and s3:List*). Every statement names its actions and its narrowest resource."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_efs as efs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from model_delivery.bucket_keys import SIGN_KEYS, STAGE_KEYS, STAGED_KEYS
from model_delivery.contract import MODELS_PREFIX
from model_delivery.mirror import CLIENT_MOUNT, CLIENT_WRITE


def models_objects_arn(bucket: s3.IBucket) -> str:
    return bucket.arn_for_objects(f"{MODELS_PREFIX}*")


def _list_models(bucket: s3.IBucket) -> iam.PolicyStatement:
    return iam.PolicyStatement(
        sid="ListModelsPrefix",
        actions=["s3:ListBucket"],
        resources=[bucket.bucket_arn],
        conditions={"StringLike": {"s3:prefix": [MODELS_PREFIX, f"{MODELS_PREFIX}*"]}},
    )


def _key_via_s3(key: kms.IKey, actions: list[str]) -> iam.PolicyStatement:
    region = cdk.Stack.of(key).region
    return iam.PolicyStatement(
        sid="ModelsKeyViaS3Only",
        actions=actions,
        resources=[key.key_arn],
        conditions={"StringEquals": {"kms:ViaService": f"s3.{region}.amazonaws.com"}},
    )


def models_read(bucket: s3.IBucket, key: kms.IKey) -> list[iam.PolicyStatement]:
    """Read the models prefix: get objects, list under the prefix, decrypt only through S3."""
    return [
        # GetObjectVersion: S3 Files (mode s3files) reads large files straight from the bucket, by version, with
        # the reader's identity.
        iam.PolicyStatement(
            sid="ReadModels", actions=["s3:GetObject", "s3:GetObjectVersion"], resources=[models_objects_arn(bucket)]
        ),
        _list_models(bucket),
        _key_via_s3(key, ["kms:Decrypt"]),
    ]


def models_write(bucket: s3.IBucket, key: kms.IKey) -> list[iam.PolicyStatement]:
    """Publish under the models prefix (operators who publish or prune by hand). Reads too: publishing skips
    content that is already there."""
    return [
        iam.PolicyStatement(
            sid="ReadWriteModels",
            actions=["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"],
            resources=[models_objects_arn(bucket)],
        ),
        _list_models(bucket),
        # Multipart uploads to an SSE-KMS bucket need Decrypt as well as GenerateDataKey.
        _key_via_s3(key, ["kms:Decrypt", "kms:GenerateDataKey"]),
    ]


def models_stage(bucket: s3.IBucket, key: kms.IKey) -> list[iam.PolicyStatement]:
    """The seeding task: read the models prefix, write only a staged version's files, manifest and pointer."""
    return [
        iam.PolicyStatement(sid="ReadModels", actions=["s3:GetObject"], resources=[models_objects_arn(bucket)]),
        iam.PolicyStatement(
            sid="StageVersions",
            actions=["s3:PutObject", "s3:AbortMultipartUpload"],
            resources=[bucket.arn_for_objects(pattern) for pattern in STAGE_KEYS],
        ),
        _list_models(bucket),
        _key_via_s3(key, ["kms:Decrypt", "kms:GenerateDataKey"]),
    ]


def models_sign(bucket: s3.IBucket, key: kms.IKey) -> list[iam.PolicyStatement]:
    """The signing task: read the models prefix and LATEST's history, write only signatures and LATEST, and remove
    the staging pointers it consumed."""
    return [
        iam.PolicyStatement(
            sid="ReadModels", actions=["s3:GetObject", "s3:GetObjectVersion"], resources=[models_objects_arn(bucket)]
        ),
        iam.PolicyStatement(
            sid="SignVersions",
            actions=["s3:PutObject"],
            resources=[bucket.arn_for_objects(pattern) for pattern in SIGN_KEYS],
        ),
        iam.PolicyStatement(
            sid="ClearStaged",
            actions=["s3:DeleteObject"],
            resources=[bucket.arn_for_objects(pattern) for pattern in STAGED_KEYS],
        ),
        _list_models(bucket),
        iam.PolicyStatement(
            sid="ListModelsHistory",
            actions=["s3:ListBucketVersions"],
            resources=[bucket.bucket_arn],
            conditions={"StringLike": {"s3:prefix": [MODELS_PREFIX, f"{MODELS_PREFIX}*"]}},
        ),
        _key_via_s3(key, ["kms:Decrypt", "kms:GenerateDataKey"]),
    ]


def mirror_access(file_system: efs.IFileSystem, access_point: efs.IAccessPoint, *, write: bool) -> iam.PolicyStatement:
    """Mount the EFS mirror through its access point only; write only when asked. Never root."""
    return iam.PolicyStatement(
        sid="MountModelMirror" + ("ReadWrite" if write else "ReadOnly"),
        actions=[CLIENT_MOUNT, CLIENT_WRITE] if write else [CLIENT_MOUNT],
        resources=[file_system.file_system_arn],
        conditions={
            "StringEquals": {"elasticfilesystem:AccessPointArn": access_point.access_point_arn},
            "Bool": {"elasticfilesystem:AccessedViaMountTarget": "true"},
        },
    )


def ecs_tasks_principal(scope: Construct) -> iam.ServicePrincipal:
    """ECS tasks of this account and region only (confused-deputy guard in a task role's trust policy)."""
    stack = cdk.Stack.of(scope)
    return iam.ServicePrincipal(
        "ecs-tasks.amazonaws.com",
        conditions={
            "ArnLike": {"aws:SourceArn": stack.format_arn(service="ecs", resource="*")},
            "StringEquals": {"aws:SourceAccount": stack.account},
        },
    )
