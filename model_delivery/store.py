"""ModelStore: everything stateful of model delivery. A KMS key with rotation, the manifest signing key
(ECC_NIST_P256, SIGN_VERIFY), the models bucket (the source of truth) with its access-log bucket and a policy
that lets only publishers write models/, optionally the EFS mirror, and the two managed policies that say who
may read and who may publish the models prefix.

The policies live next to the bucket and key they name, and task roles attach them. That keeps the
wildcard object ARN (models/*) a same-stack reference, so its cdk-nag acknowledgment can name it exactly
(a cross-stack reference only gets its final form at synth).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from model_delivery import nag
from model_delivery.bucket_files import bucket_files_role
from model_delivery.bucket_keys import SIGN_KEYS, STAGE_KEYS, STAGED_KEYS, VERSION_KEYS
from model_delivery.buckets import ModelsBucket
from model_delivery.errors import ModelDeliveryError
from model_delivery.flags import require_feature_flags
from model_delivery.logs import LogEncryption, allow_log_groups, check_log_group_prefix
from model_delivery.mirror import ModelMirror
from model_delivery.policies import (
    ecs_tasks_principal,
    mirror_access,
    models_objects_arn,
    models_read,
    models_sign,
    models_stage,
    models_write,
)
from model_delivery.signing import (
    check_publisher_role_arns,
    only_publishers_write,
    sign_manifests,
    signing_key,
    verify_manifests,
    versions_created_once,
    writes_only,
)


@dataclass(frozen=True)
class MirrorOptions:
    """Where the EFS mirror goes: mount targets in `vpc`'s private subnets (with egress), guarded by
    `security_group` (allow NFS 2049 to it from the tasks that mount the mirror)."""

    vpc: ec2.IVpc
    security_group: ec2.ISecurityGroup


class ModelStore(Construct):
    """The key, the models bucket and (with `mirror`) the EFS mirror.

    Props:
      removal_policy: what deleting the stack does to the key, buckets and file system (default
        RETAIN_ON_UPDATE_OR_DELETE: they hold the models and survive a delete or replacement, but a failed
        first create removes them instead of orphaning them; DESTROY still fails on a non-empty bucket).
      mirror: MirrorOptions for an EFS mirror (needed by tasks that read models from EFS), or None.
      access_log_days: how long the bucket's server access logs are kept (default 30).
      description: the key's description.
      publisher_role_arns: IAM role ARNs besides the seeding task role that may sign manifests and write or
        delete under models/ (operators who publish or prune by hand); everyone else is denied by the bucket.
      log_group_prefix: the name prefix of every log group the constructs encrypt with `key` (default
        `/model-delivery/<stack name>`); the key's policy lets CloudWatch Logs use the key for those only.
    Attributes: key, signing_key, bucket, access_logs (also the load balancers' log bucket), mirror (or None),
      bucket_files_role (what an S3 Files file system over models/ synchronizes with: read-only),
      read_policy (tasks that pull models: read, and the signing key's public key), write_policy (operators who
      publish by hand: write models/ and kms:Sign), seeding_role (the seeding task's: writes only staged
      versions, never signs), signing_role (the signing task's: re-hashes, signs, moves LATEST, writes the
      mirror); both live here, with the key and bucket policies that trust them, and are kept with them;
      publisher_arns (the two task roles' ARNs first), signer_arns (the signing role's first),
      log_encryption (LogEncryption: the key and the log group prefix; model_delivery.logs.log_group).
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        removal_policy: cdk.RemovalPolicy = cdk.RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE,
        mirror: MirrorOptions | None = None,
        access_log_days: int = 30,
        description: str = "Model delivery: models bucket and EFS mirror",
        publisher_role_arns: Sequence[str] = (),
        log_group_prefix: str | None = None,
    ) -> None:
        super().__init__(scope, id)
        require_feature_flags(self, "ModelStore")
        if not isinstance(access_log_days, int) or isinstance(access_log_days, bool) or access_log_days < 1:
            raise ModelDeliveryError(
                f"ModelStore access_log_days = {access_log_days!r} is not allowed: use a whole "
                "number of days, at least 1"
            )
        self.key = kms.Key(
            self, "Key", enable_key_rotation=True, removal_policy=removal_policy, description=description
        )
        prefix = (
            log_group_prefix if log_group_prefix is not None else f"/model-delivery/{cdk.Stack.of(self).stack_name}"
        )
        self.log_encryption: LogEncryption = allow_log_groups(
            self.key, check_log_group_prefix(prefix, "ModelStore log_group_prefix")
        )
        # The roles the key and the bucket trust live beside them and go only with them: a role of the same name
        # made elsewhere later is another role, never a publisher. Staging (archives, PaddleX) and signing are
        # separate roles, so code that parses untrusted archives never holds kms:Sign.
        self.seeding_role = self._task_role(
            "SeedingRole", "Seeding task: stages versions under models/", removal_policy
        )
        self.signing_role = self._task_role(
            "SigningRole", "Signing task: signs staged versions, moves LATEST, writes the EFS mirror", removal_policy
        )
        operators = check_publisher_role_arns(publisher_role_arns, "ModelStore publisher_role_arns")
        self.publisher_arns = (self.seeding_role.role_arn, self.signing_role.role_arn, *operators)
        self.signer_arns = (self.signing_role.role_arn, *operators)
        self.signing_key = signing_key(
            self,
            "SigningKey",
            publishers=self.signer_arns,
            removal_policy=removal_policy,
            description=f"{description}: signs model manifests (ECDSA P-256)",
        )
        self.models = ModelsBucket(
            self, "Bucket", key=self.key, access_log_days=access_log_days, removal_policy=removal_policy
        )
        self.bucket: s3.Bucket = self.models.bucket
        self.access_logs: s3.Bucket = self.models.access_logs
        self.bucket.add_to_resource_policy(only_publishers_write(models_objects_arn(self.bucket), self.publisher_arns))
        self.bucket.add_to_resource_policy(versions_created_once(self.bucket, VERSION_KEYS))
        self.bucket.add_to_resource_policy(
            writes_only("SeedingRoleStagesOnly", self.seeding_role.role_arn, self.bucket, STAGE_KEYS)
        )
        self.bucket.add_to_resource_policy(
            writes_only("SigningRoleSignsOnly", self.signing_role.role_arn, self.bucket, SIGN_KEYS + STAGED_KEYS)
        )
        self.mirror = (
            None
            if mirror is None
            else ModelMirror(
                self,
                "Mirror",
                vpc=mirror.vpc,
                security_group=mirror.security_group,
                key=self.key,
                removal_policy=removal_policy,
            )
        )
        # Beside the bucket and key it names (a file system over models/ lives with the apps that mount it).
        self.bucket_files_role = bucket_files_role(self, "BucketFilesSyncRole", bucket=self.bucket, key=self.key)
        self.read_policy = iam.ManagedPolicy(
            self,
            "ModelsReadAccess",
            statements=[*models_read(self.bucket, self.key), verify_manifests(self.signing_key)],
            description="Read the models prefix of the models bucket (model service tasks)",
        )
        self.write_policy = iam.ManagedPolicy(
            self,
            "ModelsWriteAccess",
            statements=[*models_write(self.bucket, self.key), sign_manifests(self.signing_key)],
            # Unchanged since the seeding task used it: a new description would replace the policy.
            description="Publish under the models prefix of the models bucket (seeding task)",
        )
        self.stage_policy = iam.ManagedPolicy(
            self,
            "ModelsStageAccess",
            statements=[*models_stage(self.bucket, self.key), verify_manifests(self.signing_key)],
            description="Stage versions under the models prefix (seeding task): files, manifest, staging pointer",
        )
        self.sign_policy = iam.ManagedPolicy(
            self,
            "ModelsSignAccess",
            statements=[*models_sign(self.bucket, self.key), sign_manifests(self.signing_key)],
            description="Sign staged versions and move LATEST under the models prefix (signing task)",
        )
        for policy in (self.read_policy, self.write_policy, self.stage_policy, self.sign_policy):
            nag.acknowledge_models_prefix(policy, models_objects_arn(self.bucket))
        nag.acknowledge_step_keys(self.stage_policy, [self.bucket.arn_for_objects(p) for p in STAGE_KEYS])
        nag.acknowledge_step_keys(self.sign_policy, [self.bucket.arn_for_objects(p) for p in SIGN_KEYS + STAGED_KEYS])
        # From the policy's side: the role naming the policy while the key's policy names the role is a cycle.
        self.stage_policy.attach_to_role(self.seeding_role)
        self.sign_policy.attach_to_role(self.signing_role)
        if self.mirror is not None:
            self.signing_role.add_to_policy(
                mirror_access(self.mirror.file_system, self.mirror.access_point, write=True)
            )
        self.models.retain_policies()

    def _task_role(self, id: str, description: str, removal_policy: cdk.RemovalPolicy) -> iam.Role:
        role = iam.Role(self, id, assumed_by=ecs_tasks_principal(self), description=description)
        role.apply_removal_policy(removal_policy)
        return role

    def require_mirror(self, construct: str) -> ModelMirror:
        if self.mirror is None:
            raise ModelDeliveryError(
                f"{construct} needs the EFS mirror: create the ModelStore with "
                "mirror=MirrorOptions(vpc=..., security_group=...)"
            )
        return self.mirror
