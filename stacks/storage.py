"""Storage stack: everything stateful (KMS key, models bucket + access-log bucket, EFS mirror), and the
two managed policies that say who may read and who may write the models prefix.

The policies live here, next to the bucket and key they name, and the task roles in the service stack
attach them. That keeps the wildcard object ARN (models/*) a same-stack reference, so its cdk-nag
acknowledgment can name it exactly (a cross-stack reference only gets its final form at synth).
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from stacks.model_mirror import ModelMirror
from stacks.models_bucket import ModelsBucket
from stacks.policies import models_objects_arn, models_read, models_write
from stacks import nag
from stacks.settings import Settings


def stateful_removal_policy(settings: Settings) -> cdk.RemovalPolicy:
    """What deleting a stack does to the stateful resources (key, buckets, file system, repository)."""
    return cdk.RemovalPolicy.RETAIN if settings.removal_policy == "retain" else cdk.RemovalPolicy.DESTROY


class StorageStack(cdk.Stack):
    def __init__(self, scope: Construct, id: str, *, settings: Settings, vpc: ec2.IVpc,
                 file_system_security_group: ec2.ISecurityGroup, **kwargs) -> None:
        super().__init__(scope, id, termination_protection=settings.termination_protection, **kwargs)
        removal_policy = stateful_removal_policy(settings)
        self.key = kms.Key(self, "Key", enable_key_rotation=True, removal_policy=removal_policy,
                           description=f"Model delivery ({settings.stage}): models bucket and EFS mirror")
        self.models = ModelsBucket(self, "Bucket", key=self.key, settings=settings, removal_policy=removal_policy)
        self.mirror = ModelMirror(self, "Mirror", vpc=vpc, security_group=file_system_security_group,
                                  key=self.key, removal_policy=removal_policy)
        bucket = self.models.bucket
        self.models_read_policy = iam.ManagedPolicy(
            self, "ModelsReadAccess", statements=models_read(bucket, self.key),
            description="Read the models prefix of the models bucket (model service tasks)")
        self.models_write_policy = iam.ManagedPolicy(
            self, "ModelsWriteAccess", statements=models_write(bucket, self.key),
            description="Publish under the models prefix of the models bucket (seeding task)")
        for policy in (self.models_read_policy, self.models_write_policy):
            nag.acknowledge_models_prefix(policy, models_objects_arn(bucket))
