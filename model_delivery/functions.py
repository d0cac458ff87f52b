"""The one way this library makes a Lambda function (the seed runner and the task notifier): optional reserved
concurrency, a dead-letter queue (SQS, encrypted with the key, TLS only) for asynchronous invocations that
failed every attempt, the environment encrypted with the key (and the role's own right to decrypt it, limited
to this function by the encryption context), JSON logs to its own encrypted log group.

Reserved concurrency is off unless asked for: "You can reserve up to the Unreserved account concurrency value
minus 100" (Lambda developer guide, "Configuring reserved concurrency"), and new accounts often have a quota of
10, where any reservation fails the stack. Without it the check CKV_AWS_115 is skipped with that reason.

Not in a VPC (checkov CKV_AWS_117, skipped with this reason on the function): both only call AWS APIs
(ECS, SNS, CloudWatch Logs) and reach nothing inside the VPC; a VPC would add network interfaces
(ec2:*NetworkInterface on Resource *), a dependency on the NAT gateways, and stack deletes that wait
for Lambda's network interfaces to be released.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from model_delivery.logs import LogEncryption, check_retention, log_group
from model_delivery.scanner import skip_checkov

LAMBDA_RUNTIME = lambda_.Runtime.PYTHON_3_14  # the newest Python runtime aws-cdk-lib 2.275 knows
DEAD_LETTER_RETENTION = cdk.Duration.days(14)  # SQS's longest: time to read what failed
NO_RESERVATION = (
    "Reserved concurrency is off by default: a reservation must leave the account's unreserved concurrency at "
    "100 or more, and new accounts often have 10 in all, where any reservation fails the deploy "
    "(setting lambda_reserved_concurrency turns it on)."
)
NOT_IN_VPC = (
    "Calls AWS APIs only (ECS, SNS, CloudWatch Logs) and reaches nothing inside the VPC; a VPC would add "
    "ENI permissions on Resource *, a dependency on NAT and slow stack deletes "
    "(model_delivery/functions.py)."
)


def write_own_logs(log_group_arn: str) -> iam.PolicyStatement:
    return iam.PolicyStatement(
        sid="WriteOwnLogs", actions=["logs:CreateLogStream", "logs:PutLogEvents"], resources=[log_group_arn]
    )


@dataclass(frozen=True)
class HardenedFunction:
    function: lambda_.Function
    log_group: logs.LogGroup
    dead_letter_queue: sqs.Queue


def hardened_function(
    scope: Construct,
    *,
    code_dir: Path,
    role: iam.Role,
    encryption: LogEncryption,
    reserved_concurrency: int | None,
    log_retention_days: int,
    where: str,
    timeout: cdk.Duration,
    description: str,
    environment: dict[str, str],
    memory_size: int = 256,
) -> HardenedFunction:
    """The function, its log group and dead-letter queue, created in `scope` as Function, Logs and DeadLetters.

    code_dir: handler.py's folder; role: gets the log, queue and key statements here; encryption: the store's
    LogEncryption (its key also encrypts the queue and the environment); where: the owning construct's name
    in errors (`<where> log_retention_days`); the rest are the function's own props.
    """
    key = encryption.key
    group = log_group(scope, "Logs", check_retention(log_retention_days, f"{where} log_retention_days"), encryption)
    role.add_to_policy(write_own_logs(group.log_group_arn))
    queue = sqs.Queue(
        scope,
        "DeadLetters",
        encryption=sqs.QueueEncryption.KMS,
        encryption_master_key=key,
        enforce_ssl=True,
        retention_period=DEAD_LETTER_RETENTION,
    )
    # Our own statements, not the queue's grant_send_messages (it grants kms:ReEncrypt* and GenerateDataKey*).
    region = cdk.Stack.of(scope).region
    role.add_to_policy(
        iam.PolicyStatement(sid="SendToDeadLetterQueue", actions=["sqs:SendMessage"], resources=[queue.queue_arn])
    )
    role.add_to_policy(
        iam.PolicyStatement(
            sid="EncryptForDeadLetterQueue",
            actions=["kms:GenerateDataKey", "kms:Decrypt"],
            resources=[key.key_arn],
            conditions={"StringEquals": {"kms:ViaService": f"sqs.{region}.amazonaws.com"}},
        )
    )
    function = lambda_.Function(
        scope,
        "Function",
        runtime=LAMBDA_RUNTIME,
        handler="handler.handler",
        code=lambda_.Code.from_asset(str(code_dir), exclude=["**/__pycache__", "**/*.pyc", "tests"]),
        role=role,
        log_group=group,
        logging_format=lambda_.LoggingFormat.JSON,
        reserved_concurrent_executions=reserved_concurrency,
        environment_encryption=key,
        timeout=timeout,
        memory_size=memory_size,
        description=description,
        environment=environment,
    )
    # Set on the resource: Function(dead_letter_queue=...) would also add the queue's wide key grant.
    cfn = function.node.default_child
    assert isinstance(cfn, lambda_.CfnFunction)
    cfn.dead_letter_config = lambda_.CfnFunction.DeadLetterConfigProperty(target_arn=queue.queue_arn)
    skip_checkov(function, "CKV_AWS_117", NOT_IN_VPC)
    if reserved_concurrency is None:
        skip_checkov(function, "CKV_AWS_115", NO_RESERVATION)
    # Lambda decrypts the environment through a grant it makes; a role that may decrypt it itself does not
    # depend on that grant. Its own policy, not the role's default one: the function waits for the default
    # policy, and this statement names the function (a cycle otherwise).
    iam.Policy(
        scope,
        "DecryptEnvironment",
        roles=[role],
        statements=[
            iam.PolicyStatement(
                sid="DecryptOwnEnvironment",
                actions=["kms:Decrypt"],
                resources=[key.key_arn],
                conditions={"StringEquals": {"kms:EncryptionContext:aws:lambda:FunctionArn": function.function_arn}},
            )
        ],
    )
    return HardenedFunction(function=function, log_group=group, dead_letter_queue=queue)
