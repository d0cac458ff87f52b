"""Storage stack: everything stateful (KMS key, models bucket + access-log bucket, EFS mirror)."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_kms as kms
from constructs import Construct

from stacks.model_mirror import ModelMirror
from stacks.models_bucket import ModelsBucket
from stacks import nag
from stacks.settings import Settings


class StorageStack(cdk.Stack):
    def __init__(self, scope: Construct, id: str, *, settings: Settings, vpc: ec2.IVpc,
                 file_system_security_group: ec2.ISecurityGroup, **kwargs) -> None:
        super().__init__(scope, id, termination_protection=settings.termination_protection, **kwargs)
        removal_policy = (cdk.RemovalPolicy.RETAIN if settings.removal_policy == "retain"
                          else cdk.RemovalPolicy.DESTROY)
        self.key = kms.Key(self, "Key", enable_key_rotation=True, removal_policy=removal_policy,
                           description=f"Model delivery ({settings.stage}): models bucket and EFS mirror")
        self.models = ModelsBucket(self, "Bucket", key=self.key, settings=settings, removal_policy=removal_policy)
        self.mirror = ModelMirror(self, "Mirror", vpc=vpc, security_group=file_system_security_group,
                                  key=self.key, removal_policy=removal_policy)
        nag.acknowledge(self.models.access_logs, "AwsSolutions-S1",
                    "This bucket is the server-access-log destination; logging it into itself would loop.")
