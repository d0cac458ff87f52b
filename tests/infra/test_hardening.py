"""What checkov's controls stand for, pinned as template assertions: every log group named under the stage's
prefix and encrypted with a key whose policy lets CloudWatch Logs use it for those groups only; the ECR
repository on the store key; both Lambdas (seed runner, task notifier) with an encrypted TLS-only dead-letter queue,
an encrypted environment they may decrypt themselves and JSON logs to their own log group, and reserved concurrency
only when asked for (a fresh account cannot reserve any)."""

from __future__ import annotations

import pytest
from aws_cdk.assertions import Match

from model_delivery.errors import ModelDeliveryError
from model_delivery.logs import LOGS_KEY_ACTIONS, check_log_group_prefix

from .helpers import logical_id, only, resources, statements

PREFIX = "/model-delivery/dev"
STAGE_GROUPS = f"arn:aws:logs:eu-west-1:111111111111:log-group:{PREFIX}/*"
LOGS_STATEMENT = {"Sid": "CloudWatchLogsOfThisStage", "Effect": "Allow",
                  "Principal": {"Service": "logs.eu-west-1.amazonaws.com"}, "Action": sorted(LOGS_KEY_ACTIONS),
                  "Resource": "*", "Condition": {"ArnLike": {"kms:EncryptionContext:aws:logs:arn": STAGE_GROUPS}}}
FUNCTIONS = {"SeedRunnerFunction": 1, "NotifierFunction": 5}


def store_key_id(built) -> str:
    return logical_id(built.storage, "AWS::KMS::Key", r"^Key[0-9A-F]{8}$")


@pytest.mark.parametrize("config", ["s3", "efs"])
def test_every_log_group_is_named_under_the_stage_prefix_and_encrypted(s3_built, efs_built, config):
    built = {"s3": s3_built, "efs": efs_built}[config]
    groups = {**resources(built.service, "AWS::Logs::LogGroup"), **resources(built.network, "AWS::Logs::LogGroup")}
    assert len(groups) >= 5
    for logical, group in groups.items():
        props = group["Properties"]
        assert props["LogGroupName"].startswith(f"{PREFIX}/ModelDelivery-dev-"), logical
        assert "KmsKeyId" in props, logical
    store_key = {"Fn::GetStackOutput": Match.any_value()}  # the storage stack's key, across stacks
    built.service.all_resources_properties("AWS::Logs::LogGroup", {"KmsKeyId": store_key})
    flow_key = logical_id(built.network, "AWS::KMS::Key", "FlowLogsKey")
    built.network.has_resource_properties("AWS::Logs::LogGroup", {"KmsKeyId": {"Fn::GetAtt": [flow_key, "Arn"]}})
    names = [g["Properties"]["LogGroupName"] for g in groups.values()]
    assert len(set(names)) == len(names)


def test_seeding_log_group_name_is_readable_and_what_the_runner_reads(s3_built):
    seeding = only_matching(s3_built.service, "AWS::Logs::LogGroup", "SeedingLogs")
    assert seeding["Properties"]["LogGroupName"] == f"{PREFIX}/ModelDelivery-dev-Service/Seeding/Logs"


def only_matching(template, type_, pattern):
    return resources(template, type_)[logical_id(template, type_, pattern)]


@pytest.mark.parametrize("stack", ["storage", "network"])
def test_the_keys_let_cloudwatch_logs_use_them_only_for_this_stages_log_groups(s3_built, stack):
    template = getattr(s3_built, stack)
    key = store_key_id(s3_built) if stack == "storage" else logical_id(template, "AWS::KMS::Key", "FlowLogsKey")
    statements = resources(template, "AWS::KMS::Key")[key]["Properties"]["KeyPolicy"]["Statement"]
    logs = [s for s in statements if "logs" in str(s.get("Principal", {}).get("Service", ""))]
    assert logs == [LOGS_STATEMENT]
    template.has_resource_properties("AWS::KMS::Key", {"EnableKeyRotation": True, "KeyPolicy": {
        "Statement": Match.array_with([LOGS_STATEMENT])}})


def test_the_ecr_repository_is_encrypted_with_the_store_key(s3_built):
    t = s3_built.storage  # the repository is created beside the key (docs/infrastructure.md)
    key = logical_id(t, "AWS::KMS::Key", r"^Key[0-9A-F]{8}$")
    t.has_resource_properties("AWS::ECR::Repository", {"EncryptionConfiguration": {
        "EncryptionType": "KMS", "KmsKey": {"Fn::GetAtt": [key, "Arn"]}}})


@pytest.fixture(scope="module")
def reserving():
    from .helpers import Built

    return Built({"lambda_reserved_concurrency": "true"})


@pytest.mark.parametrize("function, concurrency", FUNCTIONS.items())
def test_both_lambdas_are_hardened_the_same_way(s3_built, reserving, function, concurrency):
    t = s3_built.service
    logical = logical_id(t, "AWS::Lambda::Function", function)
    props = resources(t, "AWS::Lambda::Function")[logical]["Properties"]
    owner = function.removesuffix("Function")
    queue = logical_id(t, "AWS::SQS::Queue", f"{owner}DeadLetters")
    logs = logical_id(t, "AWS::Logs::LogGroup", f"{owner}Logs")
    # No reservation unless asked for: a new account's quota of 10 leaves nothing to reserve.
    assert "ReservedConcurrentExecutions" not in props
    reserved = resources(reserving.service, "AWS::Lambda::Function")[logical]["Properties"]
    assert reserved["ReservedConcurrentExecutions"] == concurrency
    assert props["DeadLetterConfig"] == {"TargetArn": {"Fn::GetAtt": [queue, "Arn"]}}
    assert props["KmsKeyArn"]["Fn::GetStackOutput"]["StackName"] == "ModelDelivery-dev-Storage"  # the store key
    assert props["LoggingConfig"] == {"LogFormat": "JSON", "LogGroup": {"Ref": logs}}
    t.has_resource_properties("AWS::Lambda::Function", {
        "DeadLetterConfig": {"TargetArn": Match.any_value()},
        "KmsKeyArn": Match.object_like({"Fn::GetStackOutput": Match.any_value()}),
        "LoggingConfig": Match.object_like({"LogFormat": "JSON"})})
    # The role may decrypt the environment itself, only for this function (no reliance on Lambda's grant).
    role = props["Role"]["Fn::GetAtt"][0]
    [decrypt] = [s for p in resources(t, "AWS::IAM::Policy").values() if {"Ref": role} in p["Properties"]["Roles"]
                 for s in p["Properties"]["PolicyDocument"]["Statement"] if s.get("Sid") == "DecryptOwnEnvironment"]
    assert decrypt["Action"] == "kms:Decrypt" and decrypt["Resource"] == props["KmsKeyArn"]
    assert decrypt["Condition"] == {"StringEquals": {"kms:EncryptionContext:aws:lambda:FunctionArn": {
        "Fn::GetAtt": [logical, "Arn"]}}}
    queue_props = resources(t, "AWS::SQS::Queue")[queue]["Properties"]
    assert "Fn::GetStackOutput" in queue_props["KmsMasterKeyId"] and queue_props["MessageRetentionPeriod"] == 14 * 86400
    [policy] = [p["Properties"]["PolicyDocument"] for p in resources(t, "AWS::SQS::QueuePolicy").values()
                if {"Ref": queue} in p["Properties"]["Queues"]]
    assert any(s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
               for s in policy["Statement"])


def test_no_template_reserves_concurrency_unless_the_setting_asks(s3_built, efs_built, prod_built, two_apps_built):
    for built in (s3_built, efs_built, prod_built, two_apps_built):
        for template in (built.network, built.storage, built.service):
            for key, function in resources(template, "AWS::Lambda::Function").items():
                assert "ReservedConcurrentExecutions" not in function["Properties"], key


def test_the_lambdas_may_send_only_to_their_own_dead_letter_queue(s3_built):
    for role, owner in (("SeedRunnerRole", "SeedRunner"), ("NotifierRole", "Notifier")):
        by_sid = {s["Sid"]: s for s in statements(s3_built, role)}
        queue = logical_id(s3_built.service, "AWS::SQS::Queue", f"{owner}DeadLetters")
        assert by_sid["SendToDeadLetterQueue"]["Action"] == "sqs:SendMessage"
        assert by_sid["SendToDeadLetterQueue"]["Resource"] == {"Fn::GetAtt": [queue, "Arn"]}
        assert by_sid["EncryptForDeadLetterQueue"]["Condition"] == {
            "StringEquals": {"kms:ViaService": "sqs.eu-west-1.amazonaws.com"}}


@pytest.mark.parametrize("prefix", ["model-delivery", "/a/", "/a//b", "/a b", "", None])
def test_a_bad_log_group_prefix_is_a_one_line_error(prefix):
    with pytest.raises(ModelDeliveryError, match=r"^ModelStore log_group_prefix = .* is not allowed: use a log group"):
        check_log_group_prefix(prefix, "ModelStore log_group_prefix")


def test_the_notifier_keeps_its_topic_destination_next_to_the_queue(s3_built):
    invoke = only(s3_built.service, "AWS::Lambda::EventInvokeConfig")["Properties"]
    topic = logical_id(s3_built.service, "AWS::SNS::Topic", "AlarmsTopic")
    assert invoke["DestinationConfig"] == {"OnFailure": {"Destination": {"Ref": topic}}}
