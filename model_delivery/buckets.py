"""The models bucket (source of truth) and the bucket that receives its server access logs.

Their bucket policies (TLS only, the log delivery service, publishers only) follow the buckets' removal policy:
a retained bucket without its policy would be open to everything IAM allows (`retain_policies`, called once every
statement is added)."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from model_delivery.scanner import skip_checkov

NONCURRENT_VERSION_DAYS = 30  # how long an overwritten LATEST pointer or manifest stays recoverable
INCOMPLETE_UPLOAD_DAYS = 7  # parts of an interrupted multipart upload cost money until aborted


class ModelsBucket(Construct):
    def __init__(
        self, scope: Construct, id: str, *, key: kms.IKey, access_log_days: int, removal_policy: cdk.RemovalPolicy
    ) -> None:
        super().__init__(scope, id)
        # S3 server access logs can only be delivered to a bucket with SSE-S3 default encryption.
        self.access_logs = s3.Bucket(
            self,
            "AccessLogs",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            versioned=True,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-access-logs",
                    expiration=cdk.Duration.days(access_log_days),
                    noncurrent_version_expiration=cdk.Duration.days(1),
                    abort_incomplete_multipart_upload_after=cdk.Duration.days(INCOMPLETE_UPLOAD_DAYS),
                )
            ],
            removal_policy=removal_policy,
        )
        self._removal_policy = removal_policy
        skip_checkov(
            self.access_logs,
            "CKV_AWS_18",
            "This is the access-log bucket: logging it into itself would log every log delivery (a loop), and "
            "into another bucket would need that one to log too; S3 server access logs end here.",
        )
        self.bucket = s3.Bucket(
            self,
            "Models",
            encryption=s3.BucketEncryption.KMS,
            encryption_key=key,
            bucket_key_enabled=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            versioned=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            server_access_logs_bucket=self.access_logs,
            server_access_logs_prefix="models-bucket/",
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="noncurrent-and-incomplete",
                    noncurrent_version_expiration=cdk.Duration.days(NONCURRENT_VERSION_DAYS),
                    abort_incomplete_multipart_upload_after=cdk.Duration.days(INCOMPLETE_UPLOAD_DAYS),
                )
            ],
            removal_policy=removal_policy,
        )

    def retain_policies(self) -> None:
        for bucket in (self.access_logs, self.bucket):
            if bucket.policy is not None:
                bucket.policy.apply_removal_policy(self._removal_policy)
