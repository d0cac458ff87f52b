"""The EFS model mirror: encrypted file system, mount targets in the private subnets, the access point
the tasks mount, and a file-system policy written out here instead of CDK's generated one.

CDK's generated policy (added after any grant*) lets any authenticated principal write and act as root
through a mount target (aws/aws-cdk#36224). Ours only denies; access is granted by the task roles'
own identity policies (same account), so a client without an IAM identity (anonymous NFS) matches no
Allow anywhere and is refused once a policy is in effect.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_efs as efs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from model_delivery.contract import IMAGE_UID, STORE_PATH
from model_delivery.file_system_policy import deny_without_tls

MIRROR_PATH = STORE_PATH  # the access point's root directory: the mirror looks like a task's store

CLIENT_MOUNT = "elasticfilesystem:ClientMount"
CLIENT_WRITE = "elasticfilesystem:ClientWrite"
CLIENT_ROOT = "elasticfilesystem:ClientRootAccess"


class ModelMirror(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        vpc: ec2.IVpc,
        security_group: ec2.ISecurityGroup,
        key: kms.IKey,
        removal_policy: cdk.RemovalPolicy,
    ) -> None:
        super().__init__(scope, id)
        self.security_group = security_group  # the tasks that mount the mirror allow NFS 2049 to it
        self.file_system = efs.FileSystem(
            self,
            "FileSystem",
            vpc=vpc,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            security_group=security_group,
            encrypted=True,
            kms_key=key,
            # Bursting gives ~0.1 MiB/s baseline for a few GB stored; model loads need Elastic.
            throughput_mode=efs.ThroughputMode.ELASTIC,
            performance_mode=efs.PerformanceMode.GENERAL_PURPOSE,
            lifecycle_policy=efs.LifecyclePolicy.AFTER_30_DAYS,
            out_of_infrequent_access_policy=efs.OutOfInfrequentAccessPolicy.AFTER_1_ACCESS,
            enable_automatic_backups=True,
            # Turns off CDK's generated allow-everyone statement; the policy below replaces it.
            allow_anonymous_access=True,
            file_system_policy=self._policy(),
            removal_policy=removal_policy,
        )
        self.access_point = self.file_system.add_access_point(
            "ModelsAccessPoint",
            path=MIRROR_PATH,
            posix_user=efs.PosixUser(uid=IMAGE_UID, gid=IMAGE_UID),
            create_acl=efs.Acl(owner_uid=IMAGE_UID, owner_gid=IMAGE_UID, permissions="755"),
        )

    @staticmethod
    def _policy() -> iam.PolicyDocument:
        everyone = [iam.AnyPrincipal()]
        client_actions = [CLIENT_MOUNT, CLIENT_WRITE, CLIENT_ROOT]
        return iam.PolicyDocument(
            statements=[
                deny_without_tls(client_actions),
                iam.PolicyStatement(
                    sid="DenyOutsideMountTargets",
                    effect=iam.Effect.DENY,
                    principals=everyone,
                    actions=client_actions,
                    conditions={"Bool": {"elasticfilesystem:AccessedViaMountTarget": "false"}},
                ),
                # Tasks run as uid 10001 through the access point; nobody needs root on the mirror.
                iam.PolicyStatement(
                    sid="DenyRootAccess", effect=iam.Effect.DENY, principals=everyone, actions=[CLIENT_ROOT]
                ),
                iam.PolicyStatement(
                    sid="DenyWritesOutsideAccessPoints",
                    effect=iam.Effect.DENY,
                    principals=everyone,
                    actions=[CLIENT_WRITE],
                    conditions={"Null": {"elasticfilesystem:AccessPointArn": "true"}},
                ),
            ]
        )
