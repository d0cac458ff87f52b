"""The manifest signing key (KMS, ECC_NIST_P256, SIGN_VERIFY) and who may sign and write models/.

Publishers are the seeding and signing task roles and the roles in `publisher_role_arns`; only the signing role
and those roles may sign. The two task roles live beside the key and the bucket (ModelStore) and are kept with
them, so the ARNs they trust always name those roles and never a later one of the same name. Key and bucket
policies name publishers in an `aws:PrincipalArn` condition under the
account principal, never as principals: a principal must exist when the policy is written, and an operator's
role in `publisher_role_arns` may not yet.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from model_delivery.errors import ModelDeliveryError

ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]{1,512}$")
# Administration of the key without any use of it: no kms:Sign (publishers only) and no kms:CreateGrant (a
# grant could hand out Sign). kms:PutKeyPolicy stays with the account: CloudFormation updates the policy with
# it, and KMS refuses a policy that would lock the account out.
KEY_ADMIN_ACTIONS = [
    "kms:DescribeKey",
    "kms:GetKeyPolicy",
    "kms:PutKeyPolicy",
    "kms:ListGrants",
    "kms:ListKeyPolicies",
    "kms:ListResourceTags",
    "kms:RevokeGrant",
    "kms:EnableKey",
    "kms:DisableKey",
    "kms:CreateAlias",
    "kms:UpdateAlias",
    "kms:DeleteAlias",
    "kms:UpdateKeyDescription",
    "kms:TagResource",
    "kms:UntagResource",
    "kms:ScheduleKeyDeletion",
    "kms:CancelKeyDeletion",
]
SIGN_ACTIONS = ["kms:Sign"]
# The runtime fetches the public key once per process and verifies locally (modelsync/signing.py);
# kms:Verify is allowed too, for operators who check a signature with the AWS CLI.
VERIFY_ACTIONS = ["kms:GetPublicKey", "kms:Verify", "kms:DescribeKey"]
# Every way to change or remove an object or its metadata under models/.
OBJECT_WRITE_ACTIONS = [
    "s3:PutObject",
    "s3:PutObjectAcl",
    "s3:PutObjectVersionAcl",
    "s3:PutObjectTagging",
    "s3:PutObjectVersionTagging",
    "s3:PutObjectRetention",
    "s3:PutObjectLegalHold",
    "s3:DeleteObject",
    "s3:DeleteObjectVersion",
    "s3:DeleteObjectTagging",
    "s3:DeleteObjectVersionTagging",
    "s3:RestoreObject",
    "s3:ReplicateObject",
    "s3:ReplicateDelete",
    "s3:AbortMultipartUpload",
]


def check_publisher_role_arns(arns: Sequence[str], where: str) -> tuple[str, ...]:
    for arn in arns:
        if not isinstance(arn, str) or not ROLE_ARN.match(arn):
            raise ModelDeliveryError(
                f"{where} = {arn!r} is not allowed: use IAM role ARNs such as "
                "arn:aws:iam::123456789012:role/ModelPublisher (no wildcards)"
            )
    return tuple(arns)


def signing_key_policy(scope: Construct, publishers: Sequence[str]) -> iam.PolicyDocument:
    """Written out: administration by the account (no use), Sign by publishers only, verify by the account
    (an IAM policy must still allow it: the service task roles get GetPublicKey/Verify, nothing else)."""
    account = iam.AccountRootPrincipal()
    return iam.PolicyDocument(
        statements=[
            iam.PolicyStatement(
                sid="KeyAdministrationWithoutUse", principals=[account], actions=KEY_ADMIN_ACTIONS, resources=["*"]
            ),
            iam.PolicyStatement(
                sid="SignOnlyPublishers",
                principals=[account],
                actions=SIGN_ACTIONS,
                resources=["*"],
                conditions={"ArnLike": {"aws:PrincipalArn": list(publishers)}},
            ),
            iam.PolicyStatement(
                sid="VerifyInThisAccount", principals=[account], actions=VERIFY_ACTIONS, resources=["*"]
            ),
        ]
    )


def signing_key(
    scope: Construct, id: str, *, publishers: Sequence[str], removal_policy: cdk.RemovalPolicy, description: str
) -> kms.Key:
    # Asymmetric keys cannot rotate automatically: rotation is a new key (docs/runtime.md, "Signed manifests").
    return kms.Key(
        scope,
        id,
        key_spec=kms.KeySpec.ECC_NIST_P256,
        key_usage=kms.KeyUsage.SIGN_VERIFY,
        enable_key_rotation=False,
        removal_policy=removal_policy,
        description=description,
        policy=signing_key_policy(scope, publishers),
    )


def only_publishers_write(objects_arn: str, publishers: Sequence[str]) -> iam.PolicyStatement:
    """Bucket policy: nobody but the publishers writes or deletes under models/, whatever IAM allows."""
    return iam.PolicyStatement(
        sid="OnlyPublishersWriteModels",
        effect=iam.Effect.DENY,
        principals=[iam.AnyPrincipal()],
        actions=OBJECT_WRITE_ACTIONS,
        resources=[objects_arn],
        conditions={"ArnNotLike": {"aws:PrincipalArn": list(publishers)}},
    )


def writes_only(sid: str, role_arn: str, bucket: s3.IBucket, patterns: Sequence[str]) -> iam.PolicyStatement:
    """Bucket policy: `role_arn` writes or deletes no object outside `patterns`, whatever IAM allows. A step that
    is taken over (the seeding task parses archives) cannot write what another step signs."""
    return iam.PolicyStatement(
        sid=sid,
        effect=iam.Effect.DENY,
        principals=[iam.AnyPrincipal()],
        actions=OBJECT_WRITE_ACTIONS,
        not_resources=[bucket.arn_for_objects(pattern) for pattern in patterns],
        conditions={"ArnLike": {"aws:PrincipalArn": role_arn}},
    )


def versions_created_once(bucket: s3.IBucket, patterns: Sequence[str]) -> iam.PolicyStatement:
    """Bucket policy: an object under `patterns` (a version's files and manifest) can only be created, never
    overwritten: PutObject and CompleteMultipartUpload must carry If-None-Match (S3 user guide, "Enforce conditional
    writes"); CreateMultipartUpload and UploadPart carry no condition headers and are exempt. What a task mounts
    (s3files mode) or verified at start therefore cannot change under it, whoever writes."""
    return iam.PolicyStatement(
        sid="VersionsAreCreatedOnce",
        effect=iam.Effect.DENY,
        principals=[iam.AnyPrincipal()],
        actions=["s3:PutObject"],
        resources=[bucket.arn_for_objects(pattern) for pattern in patterns],
        conditions={"Null": {"s3:if-none-match": "true"}, "Bool": {"s3:ObjectCreationOperation": "true"}},
    )


def sign_manifests(key: kms.IKey) -> iam.PolicyStatement:
    return iam.PolicyStatement(sid="SignManifests", actions=["kms:Sign", "kms:GetPublicKey"], resources=[key.key_arn])


def verify_manifests(key: kms.IKey) -> iam.PolicyStatement:
    """What a reader needs: the public key (modelsync verifies locally), nothing that signs."""
    return iam.PolicyStatement(sid="VerifyManifests", actions=["kms:GetPublicKey"], resources=[key.key_arn])
