"""The models bucket as a file system (Amazon S3 Files), for apps in delivery mode `s3files`: an S3 Files file
system over the bucket's models/ prefix, a mount target in every private subnet behind its own security group,
and a file-system policy that only denies; and the role S3 Files synchronizes with.

Where they live: the role belongs to the store (ModelStore.bucket_files_role, always there, beside the bucket and
key it names); the file system belongs to the apps that mount it (BucketFileSystem, in their stack), created while
one of them uses the mode. It holds no state of its own (every byte it shows is in the bucket), so adding or
removing it is one stack update that creates it, moves the apps and deletes it, with nothing cut off in between.

What each property and permission rests on (docs/infrastructure.md, "S3 Files mode", cites the pages):
- the role is assumed by elasticfilesystem.amazonaws.com, scoped to this account's file systems in this region
  (confused-deputy guard); it may list the bucket, read (and read old versions of) models/*, decrypt with the
  store's key through S3, and manage only the EventBridge rules S3 Files creates for itself
  (`DO-NOT-DELETE-S3-Files*`). It gets no write and no delete: the tasks mount read-only, and a file system that
  could write back would be one more writer under models/. AWS's examples give the role write access; whether a
  read-only file system works without it is not stated in the documentation (not verified on AWS);
- the file-system policy denies every client action without TLS and denies ClientWrite and ClientRootAccess to
  everyone. Reading is granted by each app's task role (s3files:ClientMount on this file system), so a client
  without an IAM identity matches no allow once the policy exists (as for the EFS mirror).
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3files as s3files
from constructs import Construct

from model_delivery import nag
from model_delivery.contract import MODELS_PREFIX
from model_delivery.file_system_policy import deny_without_tls
from model_delivery.policies import models_objects_arn

SERVICE_PRINCIPAL = "elasticfilesystem.amazonaws.com"  # S3 Files runs on EFS and assumes the role as EFS
SYNC_RULES = "DO-NOT-DELETE-S3-Files*"  # the EventBridge rules S3 Files creates and manages
CLIENT_MOUNT = "s3files:ClientMount"
CLIENT_WRITE = "s3files:ClientWrite"
CLIENT_ROOT = "s3files:ClientRootAccess"


def bucket_files_role(scope: Construct, id: str, *, bucket: s3.IBucket, key: kms.IKey) -> iam.Role:
    """The role an S3 Files file system over models/ synchronizes with: read-only (see the module's notes)."""
    stack = cdk.Stack.of(scope)
    role = iam.Role(
        scope,
        id,
        description="S3 Files: reads the models prefix of the models bucket into a file system (mode s3files)",
        assumed_by=iam.ServicePrincipal(
            SERVICE_PRINCIPAL,
            conditions={
                "StringEquals": {"aws:SourceAccount": stack.account},
                "ArnLike": {"aws:SourceArn": stack.format_arn(service="s3files", resource="file-system/*")},
            },
        ),
    )
    rules_arn = stack.format_arn(service="events", resource="rule", resource_name=SYNC_RULES)
    region = stack.region
    policy = iam.Policy(
        scope,
        f"{id}Policy",
        statements=[
            iam.PolicyStatement(
                sid="ListModelsBucket",
                actions=["s3:ListBucket", "s3:ListBucketVersions"],
                resources=[bucket.bucket_arn],
            ),
            iam.PolicyStatement(
                sid="ReadModels",
                actions=["s3:GetObject", "s3:GetObjectVersion"],
                resources=[models_objects_arn(bucket)],
            ),
            iam.PolicyStatement(
                sid="ModelsKeyViaS3Only",
                actions=["kms:Decrypt"],
                resources=[key.key_arn],
                conditions={"StringEquals": {"kms:ViaService": f"s3.{region}.amazonaws.com"}},
            ),
            iam.PolicyStatement(
                sid="ManageOwnSyncRules",
                actions=[
                    "events:PutRule",
                    "events:DeleteRule",
                    "events:DescribeRule",
                    "events:EnableRule",
                    "events:DisableRule",
                    "events:PutTargets",
                    "events:RemoveTargets",
                    "events:ListTargetsByRule",
                ],
                resources=[rules_arn],
            ),
        ],
    )
    policy.attach_to_role(role)
    nag.acknowledge_bucket_files_sync(policy, models_objects_arn(bucket), rules_arn)
    return role


class BucketFileSystem(Construct):
    """An S3 Files file system over the store's models/ prefix, reachable from `vpc`'s private subnets.

    Props: vpc, bucket, key (the store's: the file system is encrypted with it), role (ModelStore.bucket_files_role).
    Attributes: file_system (CfnFileSystem), file_system_arn, security_group (allow NFS 2049 to it from the tasks
    that mount it), mount_statement (what a task needs to mount it read-only: s3files:ClientMount on it)."""

    def __init__(
        self, scope: Construct, id: str, *, vpc: ec2.IVpc, bucket: s3.IBucket, key: kms.IKey, role: iam.IRole
    ) -> None:
        super().__init__(scope, id)
        self.security_group = ec2.SecurityGroup(
            self,
            "SecurityGroup",
            vpc=vpc,
            allow_all_outbound=False,
            description="S3 Files mount targets of the models bucket: NFS from the apps that mount it",
        )
        self.file_system = s3files.CfnFileSystem(
            self,
            "FileSystem",
            bucket=bucket.bucket_arn,
            prefix=MODELS_PREFIX,
            role_arn=role.role_arn,
            kms_key_id=key.key_arn,
        )
        self.file_system.apply_removal_policy(cdk.RemovalPolicy.DESTROY)
        self.file_system_arn = self.file_system.attr_file_system_arn
        for index, subnet in enumerate(vpc.select_subnets(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS).subnets):
            s3files.CfnMountTarget(
                self,
                f"MountTarget{index + 1}",
                file_system_id=self.file_system.attr_file_system_id,
                subnet_id=subnet.subnet_id,
                security_groups=[self.security_group.security_group_id],
            )
        s3files.CfnFileSystemPolicy(
            self, "Policy", file_system_id=self.file_system.attr_file_system_id, policy=_client_policy()
        )
        self.mount_statement = iam.PolicyStatement(
            sid="MountBucketFiles", actions=[CLIENT_MOUNT], resources=[self.file_system_arn]
        )


def _client_policy() -> dict:
    everyone = [iam.AnyPrincipal()]
    return iam.PolicyDocument(
        statements=[
            deny_without_tls([CLIENT_MOUNT, CLIENT_WRITE, CLIENT_ROOT], resources=["*"]),
            # Read-only for everyone: the bucket's writers are the publishing roles, through S3.
            iam.PolicyStatement(
                sid="DenyWritesAndRoot",
                effect=iam.Effect.DENY,
                principals=everyone,
                actions=[CLIENT_WRITE, CLIENT_ROOT],
                resources=["*"],
            ),
        ]
    ).to_json()
