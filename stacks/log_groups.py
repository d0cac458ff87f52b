"""CloudWatch log groups with the stage's retention (one place, so every group follows the setting)."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_logs as logs
from constructs import Construct

from stacks.settings import LOG_RETENTION_DAYS, Settings

# RetentionDays members in CDK's order map one to one onto the CloudWatch values in settings.
_RETENTION = dict(zip(LOG_RETENTION_DAYS, [m for m in logs.RetentionDays if m is not logs.RetentionDays.INFINITE]))


def retention(days: int) -> logs.RetentionDays:
    return _RETENTION[days]


def log_group(scope: Construct, id: str, settings: Settings) -> logs.LogGroup:
    # Logs are not the stateful part of this project: they go with the stack unless retention says otherwise.
    return logs.LogGroup(scope, id, retention=retention(settings.log_retention_days),
                         removal_policy=cdk.RemovalPolicy.DESTROY)
