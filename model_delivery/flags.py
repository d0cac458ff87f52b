"""Feature flags the constructs depend on: checked at construction, so an app without them fails at
synth with one line naming the flag, instead of at deploy.

Only flags without which the constructs' resources cannot deploy belong here; flags that change cosmetics
(partition literals, policy ordering, logical ids) or the consumer's own resources do not, so an app created
by an older `cdk init` is not refused for them. `cdk init` sets every flag listed here for new apps.
"""

from __future__ import annotations

import aws_cdk as cdk
from constructs import Construct

from model_delivery.errors import ModelDeliveryError

REQUIRED_FEATURE_FLAGS = {
    # The access-log bucket is object-owner-enforced (no ACLs); without the flag CDK grants S3's log
    # delivery through an ACL, which CloudFormation rejects on such a bucket ("objectOwnership must be
    # set to ObjectWriter when accessControl is LogDeliveryWrite").
    "@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy": "the access-log bucket receives S3 server access logs "
    "through a bucket policy, not an ACL",
}


def require_feature_flags(scope: Construct, construct: str) -> None:
    for flag, why in REQUIRED_FEATURE_FLAGS.items():
        if not cdk.FeatureFlags.of(scope).is_enabled(flag):
            raise ModelDeliveryError(
                f"{construct} needs the feature flag {flag} set to true in cdk.json's context "
                f"({why}); `cdk init` sets it for new apps"
            )
