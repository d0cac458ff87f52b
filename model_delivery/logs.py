"""CloudWatch log groups with one retention (every group a construct creates follows the same prop)."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_logs as logs
from constructs import Construct

from model_delivery.errors import ModelDeliveryError

# CloudWatch Logs accepts exactly these retention periods (days).
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827,
                      2192, 2557, 2922, 3288, 3653)
# RetentionDays members in CDK's order map one to one onto the CloudWatch values above.
_RETENTION = dict(zip(LOG_RETENTION_DAYS, [m for m in logs.RetentionDays if m is not logs.RetentionDays.INFINITE]))


def check_retention(days: int, where: str) -> int:
    if days not in _RETENTION:
        raise ModelDeliveryError(f"{where} = {days!r} is not allowed: use a CloudWatch Logs retention: "
                                 f"{', '.join(map(str, LOG_RETENTION_DAYS))}")
    return days


def log_group(scope: Construct, id: str, retention_days: int) -> logs.LogGroup:
    # Logs are not the stateful part of this project: they go with the stack unless retention says otherwise.
    return logs.LogGroup(scope, id, retention=_RETENTION[retention_days], removal_policy=cdk.RemovalPolicy.DESTROY)
