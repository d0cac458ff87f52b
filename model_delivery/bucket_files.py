"""The models bucket as a file system (Amazon S3 Files), for apps in delivery mode `s3files`: an S3 Files file
system over the bucket's models/ prefix, a mount target in every private subnet behind its own security group,
the role S3 Files synchronizes with, and a file-system policy that only denies.

What each property and permission rests on (docs/infrastructure.md, "S3 Files mode", cites the pages):
- the synchronization role is assumed by elasticfilesystem.amazonaws.com, scoped to this account's file systems
  in this region (confused-deputy guard);
- it may list the bucket, read (and read old versions of) models/*, decrypt with the store's key through S3, and
  manage only the EventBridge rules S3 Files creates for itself (`DO-NOT-DELETE-S3-Files*`). It gets no write
  and no delete: the tasks mount read-only, and a file system that could write back would be one more writer
  under models/ that the bucket policy would have to trust. AWS's examples give the role write access; whether
  a read-only mount works without it is not stated in the documentation (not verified on AWS);
- the file-system policy denies every client action without TLS and denies ClientWrite and ClientRootAccess to
  everyone. Reading is granted by each app's task role (s3files:ClientMount), so a client without an IAM
  identity matches no allow once the policy exists (as for the EFS mirror).
The file system itself holds no state of its own: every byte is in the bucket, so it is deleted with the stack.
"""

from __future__ import annotations

from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3files as s3files
from constructs import Construct

from model_delivery import nag
from model_delivery.contract import MODELS_PREFIX
from model_delivery.policies import models_objects_arn

SERVICE_PRINCIPAL = "elasticfilesystem.amazonaws.com"  # S3 Files runs on EFS and assumes the role as EFS
SYNC_RULES = "DO-NOT-DELETE-S3-Files*"  # the EventBridge rules S3 Files creates and manages
CLIENT_MOUNT = "s3files:ClientMount"
CLIENT_WRITE = "s3files:ClientWrite"
CLIENT_ROOT = "s3files:ClientRootAccess"
# Fixed: the group crosses stacks (the apps' rules live with the apps), so no setting may replace it.
SECURITY_GROUP_DESCRIPTION = "S3 Files mount targets of the models bucket: NFS from the apps that mount it"


@dataclass(frozen=True)
class BucketFilesOptions:
    """Where the bucket's file system is reachable: a mount target in each of `vpc`'s private subnets."""

    vpc: ec2.IVpc


class BucketFileSystem(Construct):
    """Attributes: file_system (CfnFileSystem), file_system_arn, security_group (allow NFS 2049 to it from the
    tasks that mount it), role (the synchronization role), mount_policy (what a task that mounts it needs besides
    the store's read policy: s3files:ClientMount, and s3:GetObjectVersion for the reads S3 Files makes directly
    from the bucket with the task's identity)."""

    def __init__(self, scope: Construct, id: str, *, vpc: ec2.IVpc, bucket: s3.IBucket, key: kms.IKey) -> None:
        super().__init__(scope, id)
        stack = cdk.Stack.of(self)
        self.security_group = ec2.SecurityGroup(
            self, "SecurityGroup", vpc=vpc, allow_all_outbound=False, description=SECURITY_GROUP_DESCRIPTION
        )
        self.role = iam.Role(
            self,
            "SyncRole",
            description="S3 Files: reads the models prefix of the models bucket into its file system",
            assumed_by=iam.ServicePrincipal(
                SERVICE_PRINCIPAL,
                conditions={
                    "StringEquals": {"aws:SourceAccount": stack.account},
                    "ArnLike": {"aws:SourceArn": stack.format_arn(service="s3files", resource="file-system/*")},
                },
            ),
        )
        policy = iam.Policy(self, "SyncPolicy", statements=self._sync_statements(bucket, key))
        policy.attach_to_role(self.role)
        self.file_system = s3files.CfnFileSystem(
            self,
            "FileSystem",
            bucket=bucket.bucket_arn,
            prefix=MODELS_PREFIX,
            role_arn=self.role.role_arn,
            kms_key_id=key.key_arn,
        )
        # S3 Files checks the role when the file system is created: the role must have its policy by then.
        self.file_system.node.add_dependency(policy)
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
            self, "Policy", file_system_id=self.file_system.attr_file_system_id, policy=self._client_policy()
        )
        nag.acknowledge_bucket_files_sync(policy, models_objects_arn(bucket), self._rules_arn())
        # Beside the file system and bucket it names, so its wildcard object ARN is a same-stack reference.
        self.mount_policy = iam.ManagedPolicy(
            self,
            "MountAccess",
            statements=[
                iam.PolicyStatement(sid="MountBucketFiles", actions=[CLIENT_MOUNT], resources=[self.file_system_arn]),
                # S3 Files streams large files from the bucket with the reader's own identity.
                iam.PolicyStatement(
                    sid="ReadModelVersionsDirectly",
                    actions=["s3:GetObjectVersion"],
                    resources=[models_objects_arn(bucket)],
                ),
            ],
            description="Mount the models bucket's S3 Files file system read-only (tasks in mode s3files)",
        )
        nag.acknowledge_models_prefix(self.mount_policy, models_objects_arn(bucket))

    def _rules_arn(self) -> str:
        return cdk.Stack.of(self).format_arn(service="events", resource="rule", resource_name=SYNC_RULES)

    def _sync_statements(self, bucket: s3.IBucket, key: kms.IKey) -> list[iam.PolicyStatement]:
        region = cdk.Stack.of(self).region
        return [
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
                resources=[self._rules_arn()],
            ),
        ]

    @staticmethod
    def _client_policy() -> dict:
        everyone = [iam.AnyPrincipal()]
        document = iam.PolicyDocument(
            statements=[
                iam.PolicyStatement(
                    sid="DenyWithoutTls",
                    effect=iam.Effect.DENY,
                    principals=everyone,
                    actions=[CLIENT_MOUNT, CLIENT_WRITE, CLIENT_ROOT],
                    resources=["*"],
                    conditions={"Bool": {"aws:SecureTransport": "false"}},
                ),
                # Read-only for everyone: the bucket's writers are the publishing roles, through S3.
                iam.PolicyStatement(
                    sid="DenyWritesAndRoot",
                    effect=iam.Effect.DENY,
                    principals=everyone,
                    actions=[CLIENT_WRITE, CLIENT_ROOT],
                    resources=["*"],
                ),
            ]
        )
        return document.to_json()
