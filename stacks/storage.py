"""Storage stack: everything stateful, the library's ModelStore (KMS key, models bucket with its
access-log bucket, EFS mirror, and the read and publish policies of the models prefix)."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from constructs import Construct

from model_delivery import MirrorOptions, ModelStore

from stacks.settings import Settings


def log_group_prefix(settings: Settings) -> str:
    """Every log group of a stage is named under this prefix (the keys' policies allow CloudWatch Logs only there)."""
    return f"/model-delivery/{settings.stage}"


def stateful_removal_policy(settings: Settings) -> cdk.RemovalPolicy:
    """What deleting a stack does to the stateful resources (key, buckets, file system, repository)."""
    return cdk.RemovalPolicy.RETAIN if settings.removal_policy == "retain" else cdk.RemovalPolicy.DESTROY


class StorageStack(cdk.Stack):
    def __init__(self, scope: Construct, id: str, *, settings: Settings, vpc: ec2.IVpc,
                 file_system_security_group: ec2.ISecurityGroup, **kwargs) -> None:
        super().__init__(scope, id, termination_protection=settings.termination_protection, **kwargs)
        # "Default" is CDK's hidden id: the store's resources keep the logical ids they had before the
        # constructs became a library, so an existing stage's bucket, key and file system are not replaced.
        self.store = ModelStore(self, "Default", removal_policy=stateful_removal_policy(settings),
                                mirror=MirrorOptions(vpc=vpc, security_group=file_system_security_group),
                                access_log_days=settings.log_retention_days,
                                publisher_role_arns=settings.publisher_role_arns,
                                log_group_prefix=log_group_prefix(settings),
                                description=f"Model delivery ({settings.stage}): models bucket and EFS mirror")
