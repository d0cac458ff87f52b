"""The seed runner Lambda (lambdas/seed_runner/handler.py) against a stubbed ECS RunTask."""

from __future__ import annotations

import ast
import sys

import pytest
from botocore.stub import Stubber

from seed_fakes import (CATALOG_NAMES, HANDLER_PATH, LOG_GROUP, RUNNER_ENV, TASK_ARN, TASK_DEFINITION_ARN,
                        TASK_ID, expected_run_task, load_handler, make_client, run_task_response)


@pytest.fixture
def ecs():
    client = make_client("ecs")
    with Stubber(client) as stub:
        yield client, stub
        stub.assert_no_pending_responses()


def test_starts_the_seeding_task_in_the_private_subnets(runner, ecs):
    client, stub = ecs
    stub.add_response("run_task", run_task_response(), expected_run_task())

    result = runner.start_seed_task(runner._CONFIG, client, runner.parse_only({}))

    assert result == {
        "taskArn": TASK_ARN,
        "taskId": TASK_ID,
        "logGroupName": LOG_GROUP,
        "logStreamName": f"seed/seed/{TASK_ID}",
    }


def test_only_becomes_the_seed_containers_environment_override(runner, ecs):
    client, stub = ecs
    stub.add_response("run_task", run_task_response(),
                      expected_run_task(only="SEG_M2F_GrapheneL,paddleocr"))

    only = runner.parse_only({"only": ["SEG_M2F_GrapheneL", "paddleocr", "SEG_M2F_GrapheneL"]})
    result = runner.start_seed_task(runner._CONFIG, client, only)

    assert result["taskArn"] == TASK_ARN


class LambdaContext:
    aws_request_id = "5f0e1d2c-0000-4000-8000-000000000001"


def test_handler_reads_the_event_and_returns_the_contract_dict(runner, ecs, monkeypatch):
    client, stub = ecs
    # The request id is RunTask's idempotency token: a retried invocation starts no second task.
    stub.add_response("run_task", run_task_response(),
                      expected_run_task(only="CLS_GMM_WS2", client_token=LambdaContext.aws_request_id))
    monkeypatch.setattr(runner, "_ecs_client", client)

    result = runner.handler({"only": ["CLS_GMM_WS2"]}, LambdaContext())

    assert set(result) == {"taskArn", "taskId", "logGroupName", "logStreamName"}
    assert result["logStreamName"] == f"seed/seed/{TASK_ID}"


def test_runtask_failures_are_reported_with_their_reason(runner, ecs):
    client, stub = ecs
    stub.add_response("run_task", {
        "tasks": [],
        "failures": [{"arn": TASK_DEFINITION_ARN, "reason": "RESOURCE:ENI",
                      "detail": "no free IP addresses in subnet-0aaa1111"}],
    }, expected_run_task())

    with pytest.raises(runner.SeedTaskNotStarted) as raised:
        runner.start_seed_task(runner._CONFIG, client, None)

    message = str(raised.value)
    assert "RESOURCE:ENI" in message and "no free IP addresses" in message
    assert "\n" not in message


def test_runtask_without_task_or_failure_is_an_error(runner, ecs):
    client, stub = ecs
    stub.add_response("run_task", {"tasks": [], "failures": []}, expected_run_task())

    with pytest.raises(runner.SeedTaskNotStarted, match="returned no task"):
        runner.start_seed_task(runner._CONFIG, client, None)


def test_runtask_refusal_names_the_aws_error(runner, ecs):
    client, stub = ecs
    stub.add_client_error("run_task", service_error_code="AccessDeniedException",
                          service_message="not authorized to perform: iam:PassRole",
                          http_status_code=400, expected_params=expected_run_task())

    with pytest.raises(runner.SeedTaskNotStarted,
                       match="AccessDeniedException: not authorized to perform: iam:PassRole"):
        runner.start_seed_task(runner._CONFIG, client, None)


@pytest.mark.parametrize("event", [None, {}, {"only": None}])
def test_no_only_means_the_catalog_defaults(runner, event):
    assert runner.parse_only(event) is None


@pytest.mark.parametrize("name", ["SEG_M2F_GrapheneL", "paddleocr", "PP_L2_material_agnostic",
                                  "a", "v1.2-rc_3", "A" * 128])
def test_contract_model_names_are_accepted(runner, name):
    assert runner.parse_only({"only": [name]}) == [name]


@pytest.mark.parametrize("event, complaint", [
    (["SEG_M2F_GrapheneL"], "must be a JSON object"),
    ({"onyl": ["paddleocr"]}, "unknown event key(s) 'onyl'"),
    ({"only": "paddleocr"}, "must be a list of model names"),
    ({"only": ["paddleocr", 7]}, "must be a list of model names"),
    ({"only": []}, "'only' is empty"),
    ({"only": ["../etc"]}, "invalid model name(s) '../etc'"),
    ({"only": ["-x", "ok"]}, "invalid model name(s) '-x'"),
    ({"only": [""]}, "invalid model name(s) ''"),
    ({"only": ["A" * 129]}, "invalid model name(s)"),
    ({"only": ["a,b"]}, "invalid model name(s) 'a,b'"),
])
def test_bad_events_are_refused_before_any_aws_call(runner, ecs, monkeypatch, event, complaint):
    client, _stub = ecs  # no response queued: a RunTask call would fail the test
    monkeypatch.setattr(runner, "_ecs_client", client)

    with pytest.raises(runner.InvalidSeedRequest) as raised:
        runner.handler(event, None)

    assert complaint in str(raised.value)


@pytest.mark.parametrize("missing", sorted(RUNNER_ENV))
def test_a_missing_environment_variable_is_named(monkeypatch, missing):
    env = {name: value for name, value in RUNNER_ENV.items() if name != missing}
    runner = load_handler(monkeypatch, env)  # the import (cold start) itself must not fail

    with pytest.raises(runner.ConfigError, match=f"environment variable {missing} is missing"):
        runner.handler({}, None)


def test_id_lists_without_ids_are_refused(monkeypatch):
    runner = load_handler(monkeypatch, {**RUNNER_ENV, "SECURITY_GROUP_IDS": " , "})

    with pytest.raises(runner.ConfigError, match="SECURITY_GROUP_IDS lists no ids"):
        runner.handler({}, None)


def test_configuration_is_read_once_at_cold_start(monkeypatch):
    runner = load_handler(monkeypatch, RUNNER_ENV)
    monkeypatch.setenv("CLUSTER_ARN", "arn:aws:ecs:eu-west-1:111111111111:cluster/changed")

    assert runner._CONFIG.cluster_arn == RUNNER_ENV["CLUSTER_ARN"]
    assert runner._CONFIG.subnet_ids == ("subnet-0aaa1111", "subnet-0bbb2222")


@pytest.fixture
def catalog_runner(monkeypatch):
    return load_handler(monkeypatch, {**RUNNER_ENV, "CATALOG_NAMES": " , ".join(CATALOG_NAMES)})


def test_with_catalog_names_known_names_start_the_task(catalog_runner, ecs, monkeypatch):
    client, stub = ecs
    stub.add_response("run_task", run_task_response(),
                      expected_run_task(only="paddleocr,SEG_M2F_GrapheneL",
                                        client_token=LambdaContext.aws_request_id))
    monkeypatch.setattr(catalog_runner, "_ecs_client", client)

    result = catalog_runner.handler({"only": ["paddleocr", "SEG_M2F_GrapheneL"]}, LambdaContext())

    assert result["taskArn"] == TASK_ARN
    assert catalog_runner._CONFIG.catalog_names == CATALOG_NAMES


def test_with_catalog_names_a_typo_is_refused_before_any_aws_call(catalog_runner, ecs, monkeypatch):
    client, _stub = ecs  # no response queued: a RunTask call would fail the test
    monkeypatch.setattr(catalog_runner, "_ecs_client", client)

    with pytest.raises(catalog_runner.InvalidSeedRequest) as raised:
        catalog_runner.handler({"only": ["paddleocr", "SEG_M2F_Graphenel", "zzz"]}, LambdaContext())

    assert str(raised.value) == (
        "not in the catalog: 'SEG_M2F_Graphenel' (did you mean 'SEG_M2F_GrapheneL'?), 'zzz'; "
        "catalog names include SEG_M2F_Synthetic_Data, SEG_M2F_GrapheneL, SEG_M2F_WSe2, "
        "CLS_AMM_GrapheneL, CLS_GMM_GrapheneL, ... (7 in all)")


def test_a_short_catalog_is_listed_whole(monkeypatch):
    runner = load_handler(monkeypatch, {**RUNNER_ENV, "CATALOG_NAMES": "paddleocr,SEG_M2F_WSe2"})

    with pytest.raises(runner.InvalidSeedRequest) as raised:
        runner.parse_only({"only": ["SEG_M2F_WS2"]}, runner._CONFIG.catalog_names)

    assert str(raised.value).endswith("; catalog names include paddleocr, SEG_M2F_WSe2")


@pytest.mark.parametrize("value", [None, "", "  "])
def test_without_catalog_names_any_well_formed_name_is_passed_on(monkeypatch, ecs, value):
    env = dict(RUNNER_ENV) if value is None else {**RUNNER_ENV, "CATALOG_NAMES": value}
    runner = load_handler(monkeypatch, env)
    client, stub = ecs
    stub.add_response("run_task", run_task_response(), expected_run_task(only="SEG_M2F_Graphenel"))
    monkeypatch.setattr(runner, "_ecs_client", client)

    assert runner.handler({"only": ["SEG_M2F_Graphenel"]}, None)["taskArn"] == TASK_ARN


@pytest.mark.parametrize("value, complaint", [
    (" , ", "CATALOG_NAMES lists no names"),
    ("paddleocr,../etc", "CATALOG_NAMES holds invalid model name(s) '../etc'"),
])
def test_a_malformed_catalog_names_is_a_config_error(monkeypatch, value, complaint):
    runner = load_handler(monkeypatch, {**RUNNER_ENV, "CATALOG_NAMES": value})  # cold start survives

    with pytest.raises(runner.ConfigError) as raised:
        runner.handler({}, None)

    assert complaint in str(raised.value)


@pytest.mark.parametrize("handler_path", [HANDLER_PATH, HANDLER_PATH.parents[1] / "task_notifier" / "handler.py"],
                         ids=["seed_runner", "task_notifier"])
def test_handler_imports_only_what_the_lambda_runtime_has(handler_path):
    tree = ast.parse(handler_path.read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module and node.level == 0}

    outside_stdlib = imported - set(sys.stdlib_module_names) - {"__future__"}
    assert outside_stdlib == {"boto3", "botocore"}


SIGN_ENV = {"SIGN_TASK_DEFINITION_ARN": TASK_DEFINITION_ARN.replace("Seed:3", "Sign:1"), "SIGN_CONTAINER_NAME": "sign",
            "SIGN_LOG_GROUP_NAME": "/model-delivery/dev/ModelDelivery-dev-Service/Signing/Logs",
            "SIGN_LOG_STREAM_PREFIX": "sign"}
SIGN_TASK_ARN = TASK_ARN.replace(TASK_ID, "1a2b3c4d5e6f708192a3b4c5d6e7f809")


def test_a_sign_event_starts_the_signing_task_once_per_seeding_task(monkeypatch, ecs):
    """The rule on a seeding task that ended with exit 0 sends its ARN: the signing task starts with the seeding
    task's id as its client token (a repeated event starts no second one) and as its startedBy (make seed finds it)."""
    runner = load_handler(monkeypatch, {**RUNNER_ENV, **SIGN_ENV})
    client, stub = ecs
    request = {**expected_run_task(client_token=f"sign-{TASK_ID}"),
               "taskDefinition": SIGN_ENV["SIGN_TASK_DEFINITION_ARN"], "startedBy": f"sign-after-{TASK_ID}"}
    stub.add_response("run_task", run_task_response(SIGN_TASK_ARN), request)
    monkeypatch.setattr(runner, "_ecs_client", client)

    result = runner.handler({"sign_after": TASK_ARN}, LambdaContext())

    assert result == {"taskArn": SIGN_TASK_ARN, "taskId": SIGN_TASK_ARN.rsplit("/", 1)[1],
                      "logGroupName": SIGN_ENV["SIGN_LOG_GROUP_NAME"],
                      "logStreamName": f"sign/sign/{SIGN_TASK_ARN.rsplit('/', 1)[1]}"}


@pytest.mark.parametrize("event", [{"sign_after": "arn:aws:ecs:eu-west-1:111111111111:task/x"},
                                   {"sign_after": TASK_ARN, "only": ["a"]}, {"sign_after": 3}])
def test_a_malformed_sign_event_is_refused_before_any_aws_call(monkeypatch, ecs, event):
    runner = load_handler(monkeypatch, {**RUNNER_ENV, **SIGN_ENV})
    monkeypatch.setattr(runner, "_ecs_client", ecs[0])  # no response queued: a call would fail the test
    with pytest.raises(runner.InvalidSeedRequest, match='a sign event is {"sign_after": "<seeding task ARN>"}'):
        runner.handler(event, LambdaContext())


def test_without_the_signing_task_configured_a_sign_event_names_the_variables(monkeypatch, ecs):
    runner = load_handler(monkeypatch, RUNNER_ENV)
    monkeypatch.setattr(runner, "_ecs_client", ecs[0])
    with pytest.raises(runner.ConfigError, match="the signing task is not configured"):
        runner.handler({"sign_after": TASK_ARN}, LambdaContext())
    half = load_handler(monkeypatch, {**RUNNER_ENV, **SIGN_ENV, "SIGN_LOG_GROUP_NAME": ""})  # the cold start survives
    with pytest.raises(half.ConfigError, match="SIGN_LOG_GROUP_NAME is missing: set all four or none"):
        half.handler({}, LambdaContext())
