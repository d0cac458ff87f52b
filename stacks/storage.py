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
from stacks.settings import ImageSettings, StageSettings, StoreSettings


class StorageStack(cdk.Stack):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        stage: StageSettings,
        store: StoreSettings,
        image: ImageSettings,
        vpc: ec2.IVpc,
        file_system_security_group: ec2.ISecurityGroup,
        **kwargs,
    ) -> None:
        super().__init__(scope, id, termination_protection=stage.termination_protection, **kwargs)
        # "Default" is CDK's hidden id: the store's resources keep the logical ids they had before the
        # constructs became a library, so an existing stage's bucket, key and file system are not replaced.
        self.store = ModelStore(
            self,
            "Default",
            removal_policy=stage.stateful_removal_policy,
            mirror=MirrorOptions(vpc=vpc, security_group=file_system_security_group),
            access_log_days=stage.log_retention_days,
            publisher_role_arns=store.publisher_role_arns,
            log_group_prefix=stage.log_group_prefix,
            description=f"Model delivery ({stage.name}): models bucket and EFS mirror",
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
                    description=f"keep the last {image.ecr_max_image_count} images",
                    max_image_count=image.ecr_max_image_count,
                )
            ],
            removal_policy=stage.stateful_removal_policy,
        )
        # Where to push before the service stack exists (the service stack repeats it for tools/seed.py).
        cdk.CfnOutput(self, "RepositoryUri", value=self.repository.repository_uri)
