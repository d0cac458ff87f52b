"""Storage stack: everything stateful, the library's ModelStore (KMS key, models bucket with its
access-log bucket, EFS mirror, and the read and publish policies of the models prefix) and the project's
ECR repository.

The repository lives here, not in the service stack whose tasks pull from it: with image_source=ecr a
first deploy needs an image in it before the service stack creates its task definitions and service.
So the order from an empty account is: deploy up to this stack, push the tag, deploy everything
(docs/infrastructure.md, "image_source: ecr from an empty account")."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr as ecr
from constructs import Construct

from model_delivery import MirrorOptions, ModelStore
from stacks.settings import Settings


def log_group_prefix(settings: Settings) -> str:
    """Every log group of a stage is named under this prefix (the keys' policies allow CloudWatch Logs only there)."""
    return f"/model-delivery/{settings.stage}"


def stateful_removal_policy(settings: Settings) -> cdk.RemovalPolicy:
    """What deleting a stack does to the stateful resources (key, buckets, file system, repository).

    "retain" keeps them on a stack delete and on a replacement, but deletes them when the stack's first
    create fails (DeletionPolicy RetainExceptOnCreate): a failed first deploy leaves no orphaned bucket,
    key or file system behind that the next attempt would have to clean up by hand."""
    if settings.removal_policy == "retain":
        return cdk.RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE
    return cdk.RemovalPolicy.DESTROY


class StorageStack(cdk.Stack):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        settings: Settings,
        vpc: ec2.IVpc,
        file_system_security_group: ec2.ISecurityGroup,
        **kwargs,
    ) -> None:
        super().__init__(scope, id, termination_protection=settings.termination_protection, **kwargs)
        # "Default" is CDK's hidden id: the store's resources keep the logical ids they had before the
        # constructs became a library, so an existing stage's bucket, key and file system are not replaced.
        self.store = ModelStore(
            self,
            "Default",
            removal_policy=stateful_removal_policy(settings),
            mirror=MirrorOptions(vpc=vpc, security_group=file_system_security_group),
            access_log_days=settings.log_retention_days,
            publisher_role_arns=settings.publisher_role_arns,
            log_group_prefix=log_group_prefix(settings),
            description=f"Model delivery ({settings.stage}): models bucket and EFS mirror",
        )
        self.repository = ecr.Repository(
            self,
            "Repository",
            image_tag_mutability=ecr.TagMutability.IMMUTABLE,
            image_scan_on_push=True,
            # Encryption is fixed at creation: on an existing stage this replaces the repository (push the tag again).
            encryption=ecr.RepositoryEncryption.KMS,
            encryption_key=self.store.key,
            lifecycle_rules=[
                ecr.LifecycleRule(
                    description=f"keep the last {settings.ecr_max_image_count} images",
                    max_image_count=settings.ecr_max_image_count,
                )
            ],
            removal_policy=stateful_removal_policy(settings),
        )
        # Where to push before the service stack exists (the service stack repeats it for tools/seed.py).
        cdk.CfnOutput(self, "RepositoryUri", value=self.repository.repository_uri)
