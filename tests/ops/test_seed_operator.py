"""The operator command (tools/seed.py) against stubbed CloudFormation, Lambda, ECS and Logs.

The seed runner's answers are produced by the real handler (with a stubbed RunTask), so the
tool and the Lambda are checked against each other, not against a hand-written copy.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime, timezone

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber

from seed_fakes import (CATALOG_NAMES, CLUSTER_ARN, CLUSTER_NAME, LOG_GROUP, REGION, REPO, RUNNER_ENV,
                        TASK_ARN, TASK_DEFINITION_ARN, TASK_ID, expected_run_task, load_handler,
                        make_client, run_task_response)
from tools import seed as seed_tool

STACK = "ModelDelivery-dev-Service"
FUNCTION = "ModelDelivery-dev-Service-SeedRunner4C1D2E3F-AbCdEf123456"
STREAM = f"seed/seed/{TASK_ID}"
OUTPUTS = {
    "ClusterName": CLUSTER_NAME,
    "Apps": "maskterial,doc-ocr",
    "AppMaskterialModels": "SEG_M2F_GrapheneL,CLS_AMM_GrapheneL",
    "AppDocOcrModels": "paddleocr",
    "SeedTaskDefinitionArn": TASK_DEFINITION_ARN,
    "SeedRunnerFunctionName": FUNCTION,
    "SeedLogGroupName": LOG_GROUP,
    "SeedContainerName": "seed",
    "SeedLogStreamPrefix": "seed",
    "RepositoryUri": "111111111111.dkr.ecr.eu-west-1.amazonaws.com/model-delivery",
    "ModelsBucketName": "modeldelivery-dev-models-111111111111",
    "FileSystemId": "fs-0123456789abcdef0",
}
NOW = datetime(2026, 11, 24, 9, 0, tzinfo=timezone.utc)


@dataclass
class Run:
    code: int
    out: str
    err: str
    sleeps: list


@pytest.fixture
def aws():
    clients = seed_tool.Clients(cloudformation=make_client("cloudformation"),
                                lambda_=make_client("lambda"), ecs=make_client("ecs"),
                                logs=make_client("logs"))
    stubs = {name: Stubber(getattr(clients, name)) for name in ("cloudformation", "lambda_", "ecs", "logs")}
    for stub in stubs.values():
        stub.activate()
    yield clients, stubs
    for stub in stubs.values():
        stub.assert_no_pending_responses()  # every expected call was made
        stub.deactivate()


def run_seed(clients, *argv) -> Run:
    out, err, sleeps = io.StringIO(), io.StringIO(), []
    code = seed_tool.main(["--stack", STACK, *argv], clients=clients, sleep=sleeps.append,
                          out=out, err=err)
    return Run(code, out.getvalue(), err.getvalue(), sleeps)


def expect_stack(stubs, outputs=OUTPUTS):
    stubs["cloudformation"].add_response("describe_stacks", {"Stacks": [{
        "StackName": STACK,
        "StackId": f"arn:aws:cloudformation:{REGION}:111111111111:stack/{STACK}/1",
        "CreationTime": NOW,
        "StackStatus": "UPDATE_COMPLETE",
        "Outputs": [{"OutputKey": k, "OutputValue": v} for k, v in outputs.items()],
    }]}, {"StackName": STACK})


def expect_invoke(stubs, payload: dict, *, event: dict, function_error: str | None = None):
    body = json.dumps(payload).encode()
    response = {"StatusCode": 200, "ExecutedVersion": "$LATEST",
                "Payload": StreamingBody(io.BytesIO(body), len(body))}
    if function_error:
        response["FunctionError"] = function_error
    stubs["lambda_"].add_response("invoke", response, {
        "FunctionName": FUNCTION, "InvocationType": "RequestResponse",
        "Payload": json.dumps(event).encode()})


def runner_answer(runner, event: dict) -> dict:
    """What the real seed runner returns for `event` when ECS starts the task."""
    ecs = make_client("ecs")
    only = ",".join(dict.fromkeys(event["only"])) if "only" in event else None
    with Stubber(ecs) as stub:
        stub.add_response("run_task", run_task_response(), expected_run_task(only=only))
        return runner.start_seed_task(runner._CONFIG, ecs, runner.parse_only(event))


def lambda_error_payload(exc: Exception) -> dict:
    """The body the Python Lambda runtime returns for an unhandled exception."""
    return {"errorMessage": str(exc), "errorType": type(exc).__name__,
            "requestId": "5f0e1d2c-0000-4000-8000-000000000000",
            "stackTrace": ['  File "/var/task/handler.py", line 1, in handler\n']}


def expect_task(stubs, status: str, *, exit_code: int | None = None, stop_code: str | None = None,
                stopped_reason: str | None = None, container_reason: str | None = None, task_arn: str = TASK_ARN,
                container_name: str = "seed"):
    container = {"name": container_name, "taskArn": task_arn, "lastStatus": status}
    task = {"taskArn": task_arn, "clusterArn": CLUSTER_ARN, "taskDefinitionArn": TASK_DEFINITION_ARN,
            "lastStatus": status, "desiredStatus": "STOPPED" if status == "STOPPED" else "RUNNING",
            "launchType": "FARGATE", "platformVersion": "1.4.0", "startedBy": "seed-runner",
            "containers": [container]}
    if exit_code is not None:
        container["exitCode"] = exit_code
    if container_reason:
        container["reason"] = container_reason
    if stop_code:
        task["stopCode"] = stop_code
    if stopped_reason:
        task["stoppedReason"] = stopped_reason
    stubs["ecs"].add_response("describe_tasks", {"tasks": [task], "failures": []},
                              {"cluster": CLUSTER_NAME, "tasks": [task_arn]})


def expect_logs(stubs, messages: list[str], token_in: str | None, token_out: str, *, group: str = LOG_GROUP,
                stream: str = STREAM):
    params = {"logGroupName": group, "logStreamName": stream, "startFromHead": True}
    if token_in:
        params["nextToken"] = token_in
    events = [{"timestamp": 1_795_000_000_000 + i, "message": m, "ingestionTime": 1_795_000_000_500}
              for i, m in enumerate(messages)]
    stubs["logs"].add_response("get_log_events", {
        "events": events, "nextForwardToken": token_out, "nextBackwardToken": "b/0"}, params)


def expect_caught_up(stubs, token: str, **where):
    expect_logs(stubs, [], token, token, **where)


def expect_no_stream_yet(stubs, token_in: str | None = None):
    params = {"logGroupName": LOG_GROUP, "logStreamName": STREAM, "startFromHead": True}
    if token_in:
        params["nextToken"] = token_in
    stubs["logs"].add_client_error("get_log_events", service_error_code="ResourceNotFoundException",
                                   service_message="The specified log stream does not exist.",
                                   http_status_code=400, expected_params=params)


def test_success_follows_a_late_log_stream_to_the_end(aws, runner):
    clients, stubs = aws
    expect_stack(stubs)
    expect_invoke(stubs, runner_answer(runner, {}), event={})
    # round 1: the container has not started, so its log stream does not exist yet
    expect_no_stream_yet(stubs)
    expect_task(stubs, "PENDING")
    # round 2: the stream appears
    expect_logs(stubs, ["seed: SEG_M2F_GrapheneL downloading", "seed: SEG_M2F_GrapheneL published"],
                None, "f/1")
    expect_caught_up(stubs, "f/1")
    expect_task(stubs, "RUNNING")
    # round 3: one more line, then the task stops
    expect_logs(stubs, ["seed: paddleocr unchanged"], "f/1", "f/2")
    expect_caught_up(stubs, "f/2")
    expect_task(stubs, "STOPPED", exit_code=0, stop_code="EssentialContainerExited",
                stopped_reason="Essential container in task exited")
    # after the stop: read until two polls in a row bring nothing
    expect_logs(stubs, ["seed: 2 published, 1 unchanged, 0 failed"], "f/2", "f/3")
    expect_caught_up(stubs, "f/3")
    expect_caught_up(stubs, "f/3")
    expect_caught_up(stubs, "f/3")

    result = run_seed(clients)

    assert result.code == 0, result.err
    assert result.out.splitlines() == [
        "seed: SEG_M2F_GrapheneL downloading",
        "seed: SEG_M2F_GrapheneL published",
        "seed: paddleocr unchanged",
        "seed: 2 published, 1 unchanged, 0 failed",
    ]
    assert f"started seeding task {TASK_ID} on cluster {CLUSTER_NAME}" in result.err
    assert f"logs: {LOG_GROUP} {STREAM}" in result.err
    assert [line for line in result.err.splitlines() if "task is" in line] == [
        "seed: task is PENDING", "seed: task is RUNNING", "seed: task is STOPPED"]
    assert "seeding finished: exit code 0" in result.err
    assert result.sleeps == [seed_tool.POLL_SECONDS] * 5  # 2 while running, 3 after the stop


SUMMARY = ["seed: model              status     files  bytes",
           "seed: SEG_M2F_GrapheneL  published  4      312459210",
           "seed: paddleocr          failed     -      -",
           "seed: 1 published, 0 unchanged, 1 failed"]


def test_a_summary_delivered_after_a_quiet_poll_is_still_printed(aws, runner):
    """CloudWatch may deliver the last lines well after ECS reports the task STOPPED."""
    clients, stubs = aws
    expect_stack(stubs)
    expect_invoke(stubs, runner_answer(runner, {}), event={})
    expect_logs(stubs, ["seed: paddleocr downloading"], None, "f/1")
    expect_caught_up(stubs, "f/1")
    expect_task(stubs, "STOPPED", exit_code=1, stop_code="EssentialContainerExited",
                stopped_reason="Essential container in task exited")
    expect_caught_up(stubs, "f/1")  # one quiet poll is not the end
    expect_logs(stubs, SUMMARY, "f/1", "f/2")
    expect_caught_up(stubs, "f/2")
    expect_caught_up(stubs, "f/2")
    expect_caught_up(stubs, "f/2")

    result = run_seed(clients)

    assert result.code == 1  # the container's code, after the logs were read to the end
    assert result.out.splitlines() == ["seed: paddleocr downloading", *SUMMARY]
    assert result.err.splitlines()[-3:] == [
        "seed: task is STOPPED",
        "seed: seeding failed: container seed exit code 1",
        "seed: stopped reason: Essential container in task exited (EssentialContainerExited)",
    ]  # and nothing in between says the logs were cut short
    assert result.sleeps == [seed_tool.POLL_SECONDS] * 4


def test_logs_that_never_go_quiet_are_read_for_a_bounded_time(aws, runner):
    clients, stubs = aws
    expect_stack(stubs)
    expect_invoke(stubs, runner_answer(runner, {}), event={})
    expect_logs(stubs, [], None, "f/0")  # the stream exists, still empty
    expect_caught_up(stubs, "f/0")
    expect_task(stubs, "STOPPED", exit_code=0)
    for n in range(seed_tool.DRAIN_MAX_POLLS):
        expect_logs(stubs, [f"seed: late line {n}"], f"f/{n}", f"f/{n + 1}")
        expect_caught_up(stubs, f"f/{n + 1}")

    result = run_seed(clients)

    assert result.code == 0, result.err
    assert result.out.splitlines() == [f"seed: late line {n}" for n in range(seed_tool.DRAIN_MAX_POLLS)]
    assert len(result.sleeps) == seed_tool.DRAIN_MAX_POLLS
    assert ("seed: log lines were still arriving 60 s after the task stopped; read the rest with: "
            f"aws logs get-log-events --region {REGION} --log-group-name {LOG_GROUP} --log-stream-name {STREAM} "
            "--start-from-head --query 'events[].message' --output text (or open "
            f"https://{REGION}.console.aws.amazon.com/cloudwatch/home?region={REGION}#logsV2:log-groups/log-group/"
            f"{LOG_GROUP.replace('/', '$252F')}/log-events/seed$252Fseed$252F{TASK_ID})") in result.err
    assert result.err.splitlines()[-1] == "seed: seeding finished: exit code 0"


def test_ctrl_c_after_the_task_stopped_still_reports_its_result(aws, runner):
    clients, stubs = aws
    expect_stack(stubs)
    expect_invoke(stubs, runner_answer(runner, {}), event={})
    expect_logs(stubs, ["seed: CLS_GMM_WS2 downloading"], None, "f/1")
    expect_caught_up(stubs, "f/1")
    expect_task(stubs, "STOPPED", exit_code=137, container_reason="OutOfMemoryError")
    expect_caught_up(stubs, "f/1")

    sleeps = []

    def sleep(seconds):
        sleeps.append(seconds)
        if len(sleeps) == 2:  # the second wait after the stop
            raise KeyboardInterrupt

    err = io.StringIO()
    code = seed_tool.main(["--stack", STACK], clients=clients, sleep=sleep, out=io.StringIO(), err=err)

    assert code == 137
    assert "stopped reading the logs; read the rest with: aws logs get-log-events --region" in err.getvalue()
    assert "seeding failed: container seed exit code 137" in err.getvalue()
    assert "stop-task" not in err.getvalue()


def test_only_is_passed_to_the_seed_runner(aws, runner):
    clients, stubs = aws
    event = {"only": ["SEG_M2F_WSe2", "paddleocr"]}
    expect_stack(stubs)
    expect_invoke(stubs, runner_answer(runner, event), event=event)

    result = run_seed(clients, "--only", " SEG_M2F_WSe2 , paddleocr,", "--no-wait")

    assert result.code == 0, result.err
    assert ("seed: not waiting; read its log (again for new lines) with: "
            f"aws logs get-log-events --region {REGION} --log-group-name {LOG_GROUP} --log-stream-name {STREAM} "
            "--start-from-head --query 'events[].message' --output text (or open "
            f"https://{REGION}.console.aws.amazon.com/cloudwatch/home?region={REGION}#logsV2:log-groups/log-group/"
            f"{LOG_GROUP.replace('/', '$252F')}/log-events/seed$252Fseed$252F{TASK_ID})") in result.err
    assert "logs tail" not in result.err  # AWS CLI v1, which the project installs, has no `aws logs tail`


def test_app_seeds_the_models_that_app_serves(aws, runner):
    """make seed APP=doc-ocr: the app's models come from the stack's outputs (what is deployed, not cdk.json)."""
    clients, stubs = aws
    event = {"only": ["paddleocr"]}
    expect_stack(stubs)
    expect_invoke(stubs, runner_answer(runner, event), event=event)

    result = run_seed(clients, "--app", "doc-ocr", "--no-wait")

    assert result.code == 0, result.err


def test_an_unknown_app_is_named_with_the_stacks_apps(aws):
    clients, stubs = aws
    expect_stack(stubs)

    result = run_seed(clients, "--app", "ocr")

    assert result.code == 2
    assert result.err == ("seed: error: --app 'ocr' is not an app of this stack: use one of maskterial, doc-ocr "
                          "(or leave --app out to seed every app's models)\n")


def test_app_and_only_together_are_refused_before_any_aws_call(aws):
    clients, _ = aws
    result = run_seed(clients, "--app", "maskterial", "--only", "paddleocr")
    assert result.code == 2 and result.err == (
        "seed: error: --app and --only both choose what to seed: give one of them\n")


def expect_task_missing(stubs):
    stubs["ecs"].add_response("describe_tasks", {"tasks": [], "failures": [
        {"arn": TASK_ARN, "reason": "MISSING"}]}, {"cluster": CLUSTER_NAME, "tasks": [TASK_ARN]})


def test_a_task_not_yet_listed_by_ecs_is_waited_for(aws, runner):
    clients, stubs = aws
    expect_stack(stubs)
    expect_invoke(stubs, runner_answer(runner, {}), event={})
    expect_no_stream_yet(stubs)
    expect_task_missing(stubs)  # DescribeTasks is eventually consistent right after RunTask
    expect_no_stream_yet(stubs)
    expect_task(stubs, "STOPPED", exit_code=0)
    expect_no_stream_yet(stubs)
    expect_no_stream_yet(stubs)

    result = run_seed(clients)

    assert result.code == 0, result.err
    assert result.sleeps == [seed_tool.POLL_SECONDS] * 3


def test_a_task_that_never_shows_up_is_an_error(aws, runner):
    clients, stubs = aws
    expect_stack(stubs)
    expect_invoke(stubs, runner_answer(runner, {}), event={})
    for _ in range(seed_tool.MISSING_TASK_POLLS + 1):
        expect_no_stream_yet(stubs)
        expect_task_missing(stubs)

    result = run_seed(clients)

    assert result.code == 1
    assert result.err.splitlines()[-1] == (
        f"seed: error: ECS does not list the seeding task {TASK_ARN}: look for it in the "
        "cluster's stopped tasks and its log stream")


def test_failed_task_exits_with_the_containers_code_and_reasons(aws, runner):
    clients, stubs = aws
    expect_stack(stubs)
    expect_invoke(stubs, runner_answer(runner, {}), event={})
    expect_logs(stubs, ["seed: SEG_M2F_Synthetic_Data extracting"], None, "f/1")
    expect_caught_up(stubs, "f/1")
    expect_task(stubs, "STOPPED", exit_code=137, stop_code="EssentialContainerExited",
                stopped_reason="Essential container in task exited",
                container_reason="OutOfMemoryError: Container killed due to memory usage")
    expect_caught_up(stubs, "f/1")
    expect_caught_up(stubs, "f/1")

    result = run_seed(clients)

    assert result.code == 137
    assert "seeding failed: container seed exit code 137" in result.err
    assert "stopped reason: Essential container in task exited (EssentialContainerExited)" in result.err
    assert "container reason: OutOfMemoryError: Container killed due to memory usage" in result.err
    assert "Traceback" not in result.err


def test_task_that_never_ran_its_container_fails_with_the_stopped_reason(aws, runner):
    clients, stubs = aws
    expect_stack(stubs)
    expect_invoke(stubs, runner_answer(runner, {}), event={})
    expect_no_stream_yet(stubs)
    expect_task(stubs, "STOPPED", stop_code="TaskFailedToStart",
                stopped_reason="CannotPullContainerError: pull image manifest has been retried 7 times",
                container_reason="CannotPullContainerError: ref pull has been retried")
    expect_no_stream_yet(stubs)
    expect_no_stream_yet(stubs)

    result = run_seed(clients)

    assert result.code == 1
    assert f"seeding task {TASK_ID} stopped before container seed exited" in result.err
    assert "stopped reason: CannotPullContainerError: pull image manifest" in result.err
    assert "(TaskFailedToStart)" in result.err
    assert "the task wrote no log stream" in result.err


def test_runtask_failures_come_back_as_one_line(aws, runner):
    clients, stubs = aws
    ecs = make_client("ecs")
    with Stubber(ecs) as ecs_stub:
        ecs_stub.add_response("run_task", {"tasks": [], "failures": [{
            "arn": TASK_DEFINITION_ARN, "reason": "RESOURCE:ENI",
            "detail": "no free IP addresses in subnet-0aaa1111"}]}, expected_run_task())
        with pytest.raises(runner.SeedTaskNotStarted) as raised:
            runner.start_seed_task(runner._CONFIG, ecs, None)
    expect_stack(stubs)
    expect_invoke(stubs, lambda_error_payload(raised.value), event={}, function_error="Unhandled")

    result = run_seed(clients)

    assert result.code == 1
    assert result.err.strip().splitlines() == [
        "seed: error: the seed runner failed: SeedTaskNotStarted: RunTask did not start the seeding "
        f"task: {TASK_DEFINITION_ARN}: RESOURCE:ENI (no free IP addresses in subnet-0aaa1111)"]


def _refused_only_name(aws, runner, name: str, catalog_names=None):
    """Run `seed --only NAME` against the real handler's refusal; the tool's result."""
    clients, stubs = aws
    event = {"only": [name]}
    with pytest.raises(runner.InvalidSeedRequest) as raised:
        runner.parse_only(event, *([catalog_names] if catalog_names is not None else []))
    expect_stack(stubs)
    expect_invoke(stubs, lambda_error_payload(raised.value), event=event, function_error="Unhandled")
    result = run_seed(clients, "--only", name)
    assert result.code == 2
    assert len(result.err.strip().splitlines()) == 1
    return result


def test_a_bad_only_name_is_a_usage_error(aws, runner):
    result = _refused_only_name(aws, runner, "SEG M2F")
    assert result.err.startswith("seed: error: the seed runner failed: InvalidSeedRequest: "
                                 "invalid model name(s) 'SEG M2F'")


def test_a_name_outside_the_catalog_is_a_usage_error(aws, monkeypatch):
    runner = load_handler(monkeypatch, {**RUNNER_ENV, "CATALOG_NAMES": ",".join(CATALOG_NAMES)})
    result = _refused_only_name(aws, runner, "PaddleOCR", runner._CONFIG.catalog_names)
    assert result.err.startswith("seed: error: the seed runner failed: InvalidSeedRequest: not in the "
                                 "catalog: 'PaddleOCR' (did you mean 'paddleocr'?); catalog names include ")


def test_a_lambda_timeout_is_reported_on_one_line(aws):
    clients, stubs = aws
    expect_stack(stubs)
    expect_invoke(stubs, {"errorMessage": "2026-11-24T09:00:03Z 5f0e Task timed out after 3.00 seconds\n",
                          "errorType": "Sandbox.Timedout"}, event={}, function_error="Unhandled")

    result = run_seed(clients)

    assert result.code == 1
    assert result.err == ("seed: error: the seed runner failed: Sandbox.Timedout: "
                          "2026-11-24T09:00:03Z 5f0e Task timed out after 3.00 seconds\n")


def test_an_answer_from_another_version_of_the_runner_is_refused(aws):
    clients, stubs = aws
    expect_stack(stubs)
    expect_invoke(stubs, {"taskArn": TASK_ARN}, event={})

    result = run_seed(clients)

    assert result.code == 1
    assert "the function and this tool are from different versions" in result.err


def test_missing_stack_outputs_are_named(aws):
    clients, stubs = aws
    old_outputs = {k: v for k, v in OUTPUTS.items() if k not in ("SeedRunnerFunctionName", "SeedContainerName")}
    expect_stack(stubs, old_outputs)

    result = run_seed(clients)

    assert result.code == 2
    assert result.err == ("seed: error: stack ModelDelivery-dev-Service has no output "
                          "SeedRunnerFunctionName, SeedContainerName: it was deployed from another "
                          "version of this project; deploy the current one (cdk deploy)\n")


def test_unknown_stack_says_where_it_looked(aws):
    clients, stubs = aws
    stubs["cloudformation"].add_client_error(
        "describe_stacks", service_error_code="ValidationError",
        service_message=f"Stack with id {STACK} does not exist", http_status_code=400,
        expected_params={"StackName": STACK})

    result = run_seed(clients)

    assert result.code == 2
    assert result.err.startswith(f"seed: error: stack {STACK} not found in region {REGION}: ")


def test_access_denied_on_invoke_is_one_line(aws):
    clients, stubs = aws
    expect_stack(stubs)
    stubs["lambda_"].add_client_error(
        "invoke", service_error_code="AccessDeniedException", http_status_code=403,
        service_message=f"User is not authorized to perform: lambda:InvokeFunction on {FUNCTION}")

    result = run_seed(clients)

    assert result.code == 1
    assert result.err.startswith(f"seed: error: access denied while invoking the seed runner {FUNCTION}: ")
    assert len(result.err.strip().splitlines()) == 1


def test_expired_credentials_are_a_usage_error(aws):
    clients, stubs = aws
    stubs["cloudformation"].add_client_error(
        "describe_stacks", service_error_code="ExpiredToken", http_status_code=403,
        service_message="The security token included in the request is expired")

    result = run_seed(clients)

    assert result.code == 2
    assert "AWS rejected the credentials (ExpiredToken" in result.err


def test_ctrl_c_while_waiting_leaves_the_task_running_and_says_how_to_stop_it(aws, runner):
    clients, stubs = aws
    expect_stack(stubs)
    expect_invoke(stubs, runner_answer(runner, {}), event={})
    expect_no_stream_yet(stubs)
    expect_task(stubs, "RUNNING")

    def interrupt(_seconds):
        raise KeyboardInterrupt

    err = io.StringIO()
    code = seed_tool.main(["--stack", STACK], clients=clients, sleep=interrupt, out=io.StringIO(), err=err)

    assert code == 130
    assert f"aws ecs stop-task --cluster {CLUSTER_NAME} --task {TASK_ID}" in err.getvalue()


def test_empty_only_is_refused_before_any_aws_call(aws):
    clients, _stubs = aws

    result = run_seed(clients, "--only", " , ")

    assert result.code == 2
    assert result.err == "seed: error: --only names no model: give NAME[,NAME...] or leave it out\n"


def offline_env(tmp_path, **extra: str) -> dict:
    """Environment for a real process: no AWS settings of ours, every AWS call to a closed port."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_CONFIG_FILE=str(tmp_path / "none"), AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"),
               AWS_EC2_METADATA_DISABLED="true", AWS_ENDPOINT_URL="http://127.0.0.1:9", **extra)
    return env


def test_no_credentials_as_a_real_process(tmp_path):
    """The real entry point, real boto3 credential chain, nothing configured: one line, exit 2."""
    env = offline_env(tmp_path, PYTHONPATH=str(REPO))

    proc = subprocess.run([sys.executable, "-m", "tools.seed", "--stack", STACK, "--region", REGION],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)

    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.startswith("seed: error: no usable AWS credentials")
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")
def test_make_seed_turns_the_tools_exit_code_into_makes_own(tmp_path):
    """docs/operations-seed.md: scripts must call the module, `make seed` exits 2 on any failure."""
    env = offline_env(tmp_path, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    direct = subprocess.run([sys.executable, "-m", "tools.seed", "--stack", STACK, "--region", REGION],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    # -o install: use the tree's virtualenv as it is, install nothing. Under `make test` the
    # outer make's flags and jobserver must not leak into this one.
    make_env = {k: v for k, v in env.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    via_make = subprocess.run(["make", "-s", "-o", "install", "seed", f"PY={sys.executable}",
                               f"SEED_ARGS=--region {REGION}"],
                              cwd=REPO, env=make_env, capture_output=True, text=True, timeout=60)

    assert direct.returncode == 1, direct.stderr  # an AWS call failed
    assert direct.stderr.startswith("seed: error: AWS call failed: Could not connect")
    assert via_make.returncode == 2, via_make.stderr
    assert "seed: error: AWS call failed" in via_make.stderr
    assert via_make.stderr.strip().splitlines()[-1].endswith("seed] Error 1")


def test_the_seed_runner_is_invoked_once_and_waited_for():
    """A retried invoke would start a second seeding task, so botocore must not retry it."""
    session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                            region_name=REGION)
    config = seed_tool.Clients.from_session(session).lambda_.meta.config

    assert config.retries["total_max_attempts"] == 1
    assert config.read_timeout >= 900  # the longest a Lambda function may run


# ---- the signing task the stack starts after a good seed ------------------------------------------------------------

SIGN_GROUP = "/model-delivery/dev/ModelDelivery-dev-Service/Signing/Logs"
SIGN_TASK_ID = "1a2b3c4d5e6f708192a3b4c5d6e7f809"
SIGN_TASK_ARN = TASK_ARN.replace(TASK_ID, SIGN_TASK_ID)
SIGN_STREAM = f"sign/sign/{SIGN_TASK_ID}"
SIGN_OUTPUTS = {**OUTPUTS, "SignLogGroupName": SIGN_GROUP, "SignContainerName": "sign", "SignLogStreamPrefix": "sign",
                "SignTaskDefinitionArn": TASK_DEFINITION_ARN.replace("Seed:3", "Sign:1")}
SIGN = {"group": SIGN_GROUP, "stream": SIGN_STREAM}


def expect_seed_that_ends(stubs, runner, exit_code: int) -> None:
    expect_stack(stubs, SIGN_OUTPUTS)
    expect_invoke(stubs, runner_answer(runner, {}), event={})
    expect_logs(stubs, ["seed: 1 published, 0 unchanged, 0 failed"], None, "f/1")
    expect_caught_up(stubs, "f/1")
    expect_task(stubs, "STOPPED", exit_code=exit_code, stop_code="EssentialContainerExited",
                stopped_reason="Essential container in task exited")
    for _ in range(2):
        expect_caught_up(stubs, "f/1")


def expect_sign_listed(stubs, arns: list[str], status: str = "RUNNING") -> None:
    stubs["ecs"].add_response("list_tasks", {"taskArns": arns}, {
        "cluster": CLUSTER_NAME, "startedBy": f"sign-after-{TASK_ID}", "desiredStatus": status})


def test_after_a_good_seed_the_signing_task_is_found_and_followed_to_its_end(aws, runner):
    clients, stubs = aws
    expect_seed_that_ends(stubs, runner, 0)
    # The rule starts it a few seconds later: not listed yet, then listed.
    expect_sign_listed(stubs, [])
    expect_sign_listed(stubs, [], "STOPPED")
    expect_sign_listed(stubs, [SIGN_TASK_ARN])
    expect_logs(stubs, ["sign: 1 signed, 0 refused, 0 failed"], None, "s/1", **SIGN)
    expect_caught_up(stubs, "s/1", **SIGN)
    expect_task(stubs, "STOPPED", exit_code=0, task_arn=SIGN_TASK_ARN, container_name="sign")
    for _ in range(2):
        expect_caught_up(stubs, "s/1", **SIGN)

    result = run_seed(clients)

    assert result.code == 0, result.err
    assert result.out.splitlines() == ["seed: 1 published, 0 unchanged, 0 failed", "sign: 1 signed, 0 refused, 0 failed"]
    assert "seeding finished: exit code 0" in result.err and "signing finished: exit code 0" in result.err
    assert f"signing task {SIGN_TASK_ID}; logs: {SIGN_GROUP} {SIGN_STREAM}" in result.err


def test_a_failed_signing_task_is_the_seeds_result(aws, runner):
    clients, stubs = aws
    expect_seed_that_ends(stubs, runner, 0)
    expect_sign_listed(stubs, [SIGN_TASK_ARN])
    expect_logs(stubs, ["sign: 0 signed, 1 refused, 0 failed", "FAILED a: files/w.bin: sha256 mismatch"], None,
                "s/1", **SIGN)
    expect_caught_up(stubs, "s/1", **SIGN)
    expect_task(stubs, "STOPPED", exit_code=1, task_arn=SIGN_TASK_ARN, container_name="sign",
                stop_code="EssentialContainerExited", stopped_reason="Essential container in task exited")
    for _ in range(2):
        expect_caught_up(stubs, "s/1", **SIGN)

    result = run_seed(clients)

    assert result.code == 1
    assert "signing failed: container sign exit code 1" in result.err


def test_a_failed_seed_starts_no_signing_and_is_not_waited_for(aws, runner):
    clients, stubs = aws
    expect_seed_that_ends(stubs, runner, 1)  # nothing listed: list_tasks would be an unexpected call

    assert run_seed(clients).code == 1


def test_a_signing_task_that_never_starts_is_one_line_with_the_next_step(aws, runner):
    clients, stubs = aws
    expect_seed_that_ends(stubs, runner, 0)
    for _ in range(seed_tool.SIGN_START_POLLS):
        expect_sign_listed(stubs, [])
        expect_sign_listed(stubs, [], "STOPPED")

    result = run_seed(clients)

    assert result.code == 1
    [error] = [line for line in result.err.splitlines() if line.startswith("seed: error:")]
    assert error.startswith("seed: error: no signing task started within 120 s after the seed")
    assert '"sign_after"' in error and FUNCTION in error
