"""CloudWatch log groups: one retention, and every group encrypted with a KMS key whose policy lets the
CloudWatch Logs service use it only for the groups named under one prefix (per stage).

Why named groups: the key's policy (in the stack of the key) must name the log groups that may use it
before they exist, and in other stacks; a reference would make the key's stack depend on theirs (a
cycle). A name pattern does not: every group is `<prefix>/<stack name>/<construct path in the stack>`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from constructs import Construct

from model_delivery.errors import ModelDeliveryError

# CloudWatch Logs accepts exactly these retention periods (days).
LOG_RETENTION_DAYS = (
    1,
    3,
    5,
    7,
    14,
    30,
    60,
    90,
    120,
    150,
    180,
    365,
    400,
    545,
    731,
    1096,
    1827,
    2192,
    2557,
    2922,
    3288,
    3653,
)
# RetentionDays members in CDK's order map one to one onto the CloudWatch values above.
_RETENTION = dict(
    zip(LOG_RETENTION_DAYS, [m for m in logs.RetentionDays if m is not logs.RetentionDays.INFINITE], strict=True)
)
# The characters CloudWatch Logs allows in a log group name (CreateLogGroup), at most 512 of them.
_NAME = re.compile(r"^/[A-Za-z0-9._/#-]{1,400}[A-Za-z0-9._#-]$")
# The actions the CloudWatch Logs documentation lists for a customer managed key (encrypt-log-data-kms).
LOGS_KEY_ACTIONS = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]


def check_retention(days: int, where: str) -> int:
    if days not in _RETENTION:
        raise ModelDeliveryError(
            f"{where} = {days!r} is not allowed: use a CloudWatch Logs retention: "
            f"{', '.join(map(str, LOG_RETENTION_DAYS))}"
        )
    return days


def check_log_group_prefix(prefix: str, where: str) -> str:
    if not isinstance(prefix, str) or not _NAME.match(prefix) or "//" in prefix:
        raise ModelDeliveryError(
            f"{where} = {prefix!r} is not allowed: use a log group name prefix that starts "
            "with /, does not end with /, and has only letters, digits and . _ - / # "
            "(e.g. /model-delivery/prod)"
        )
    return prefix


@dataclass(frozen=True)
class LogEncryption:
    """The key that encrypts log groups and the name prefix its policy allows them under."""

    key: kms.IKey
    prefix: str


def allow_log_groups(key: kms.Key, prefix: str) -> LogEncryption:
    """Let CloudWatch Logs use `key` for the log groups named `<prefix>/...` of this account and region only."""
    stack = cdk.Stack.of(key)
    groups = stack.format_arn(
        service="logs", resource="log-group", resource_name=f"{prefix}/*", arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME
    )
    key.add_to_resource_policy(
        iam.PolicyStatement(
            sid="CloudWatchLogsOfThisStage",
            principals=[iam.ServicePrincipal(f"logs.{stack.region}.amazonaws.com")],
            actions=LOGS_KEY_ACTIONS,
            resources=["*"],
            conditions={"ArnLike": {"kms:EncryptionContext:aws:logs:arn": groups}},
        )
    )
    return LogEncryption(key=key, prefix=prefix)


def log_group_name(scope: Construct, id: str, prefix: str) -> str:
    """`<prefix>/<stack name>/<path of the new construct in its stack>`, with CDK's hidden "Default" ids left out."""
    stack = cdk.Stack.of(scope)
    inner = scope.node.path[len(stack.node.path) :].strip("/").split("/") if scope is not stack else []
    parts = [stack.stack_name, *(p for p in inner if p and p != "Default"), id]
    return f"{prefix}/" + "/".join(re.sub(r"[^A-Za-z0-9._#-]", "-", part) for part in parts)


def log_group(scope: Construct, id: str, retention_days: int, encryption: LogEncryption) -> logs.LogGroup:
    # Logs are not the stateful part of this project: they go with the stack unless retention says otherwise.
    return logs.LogGroup(
        scope,
        id,
        retention=_RETENTION[retention_days],
        removal_policy=cdk.RemovalPolicy.DESTROY,
        log_group_name=log_group_name(scope, id, encryption.prefix),
        encryption_key=encryption.key,
    )
