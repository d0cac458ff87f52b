"""tools/up.py end to end: CloudFormation, ECS, Lambda and Logs stubbed on real shapes (the seed runner's answers
come from the real handler), the bucket on the moto S3 server, the deploys a recorded fake.

(a) an empty account: deploy with the services stopped, seed, deploy, steady, URLs; (b) a seeded stage: one deploy,
then steady; (c) a failing seed stops before the second deploy and says what to run; (d) a service that never gets
steady times out naming the app and its last event. Then the other ways a step fails.
"""

from __future__ import annotations

import io
import os
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime, timezone

import pytest

from seed_fakes import ACCOUNT, CLUSTER_ARN, CLUSTER_NAME, REGION, REPO
from test_pins import publish
from test_preflight import STAGE, Aws, expect_no_stack, expect_ready_account, expect_stack, write_cdk_json
from test_seed_operator import (FUNCTION, LOG_GROUP, TASK_DEFINITION_ARN, expect_caught_up, expect_invoke, expect_logs,
                                expect_task, runner_answer)
from tools import seed as seed_tool
from tools import up as up_tool
from tools.preflight import CHECKS

SERVICE_STACK = "ModelDelivery-dev-Service"
UP_STAGE = {**STAGE, "apps": {"web": {"models": ["paddleocr"], "ingress": "internal"},
                              "doc-ocr": {"models": ["PP_L2_material_agnostic"]}}}
SEEDED = ("paddleocr", "PP_L2_material_agnostic")  # what the stage seeds: every app's models
SERVICES = {"web": "ModelDelivery-dev-Service-WebService7D1C8B2E-Q1w2E3r4T5y6",
            "doc-ocr": "ModelDelivery-dev-Service-DocOcrService0A9B8C7D-U7i8O9p0A1s2"}
WEB_URL = f"http://internal-ModelD-WebLo-1A2B3C4D5E6F-1234567890.{REGION}.elb.amazonaws.com"
STOPPED = ["deploy", "--all", "-c", "stage=dev", "-c", "start_service=false"]
STARTED = ["deploy", "--all", "-c", "stage=dev"]
NOW = datetime(2026, 11, 24, 9, 0, tzinfo=timezone.utc)


def service_outputs(bucket: str, apps=SERVICES, urls=None) -> dict:
    outputs = {"ClusterName": CLUSTER_NAME, "Apps": ",".join(apps), "ModelsBucketName": bucket,
               "SeedRunnerFunctionName": FUNCTION, "SeedContainerName": "seed", "SeedLogGroupName": LOG_GROUP,
               "SeedLogStreamPrefix": "seed", "SeedTaskDefinitionArn": TASK_DEFINITION_ARN}
    for app, name in apps.items():
        key = "".join(part.capitalize() for part in app.split("-"))
        outputs[f"App{key}ServiceName"] = name
    for app, url in ({"web": WEB_URL} if urls is None else urls).items():  # apps with an ingress
        outputs[f"App{app.capitalize()}Url"] = url
    return outputs


@dataclass
class Deploys:
    """The cdk runner, recorded: each call's arguments, answered with the next exit code."""

    codes: list
    calls: list

    def __call__(self, args: list[str]) -> int:
        self.calls.append(args)
        return self.codes.pop(0)


class Clock:
    def __init__(self) -> None:
        self.now, self.sleeps = 0.0, []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@dataclass
class Result:
    code: int
    out: str
    err: str
    deploys: list
    sleeps: list


@pytest.fixture
def aws():
    fake = Aws()
    yield fake
    for stub in fake.stubs.values():
        stub.assert_no_pending_responses()


def seed_stubs(aws) -> dict:
    """The stubs the seed operator tests' helpers expect, on the same clients up uses."""
    return {"cloudformation": aws.stub("cloudformation"), "lambda_": aws.stub("lambda"), "ecs": aws.stub("ecs"),
            "logs": aws.stub("logs")}


def run_up(tmp_path, aws, s3, *argv, stage=UP_STAGE, codes=(0, 0), docker=0) -> Result:
    out, err, clock = io.StringIO(), io.StringIO(), Clock()
    deploys = Deploys(list(codes), [])
    clients = up_tool.Aws(client=aws, s3=lambda: s3, seed=seed_tool.Clients(
        cloudformation=aws("cloudformation"), lambda_=aws("lambda"), ecs=aws("ecs"), logs=aws("logs")))
    code = up_tool.main(["--stage", "dev", "--cdk-json", str(write_cdk_json(tmp_path, stage)), *argv],
                        aws=clients, deploy=deploys, run=lambda command: docker, sleep=clock.sleep, clock=clock,
                        out=out, err=err)
    return Result(code, out.getvalue(), err.getvalue(), deploys.calls, clock.sleeps)


def expect_seed(aws, runner, *, only=None, exit_code=0, bucket="b"):
    """make seed: the outputs, the runner's invoke, a log line, the task stopping, the log drained."""
    stubs = seed_stubs(aws)
    expect_stack(aws, SERVICE_STACK, service_outputs(bucket))
    event = {"only": only} if only else {}
    expect_invoke(stubs, runner_answer(runner, event), event=event)
    expect_logs(stubs, ["seed: paddleocr published"], None, "f/1")
    expect_caught_up(stubs, "f/1")
    expect_task(stubs, "STOPPED", exit_code=exit_code, stop_code="EssentialContainerExited",
                stopped_reason="Essential container in task exited")
    expect_caught_up(stubs, "f/1")
    expect_caught_up(stubs, "f/1")


def ecs_service(app: str, *, running=1, desired=1, rollout="COMPLETED", deployments=1, event=None) -> dict:
    name = SERVICES[app]
    primary = {"id": "ecs-svc/1111111111111111111", "status": "PRIMARY", "desiredCount": desired,
               "runningCount": running, "pendingCount": desired - running, "rolloutState": rollout,
               "rolloutStateReason": "ECS deployment ecs-svc/1111111111111111111 in progress.", "createdAt": NOW,
               "updatedAt": NOW, "launchType": "FARGATE", "platformVersion": "1.4.0",
               "taskDefinition": f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/ModelDeliverydev{app}:2"}
    active = {**primary, "id": "ecs-svc/2222222222222222222", "status": "ACTIVE", "rolloutState": "COMPLETED",
              "taskDefinition": f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/ModelDeliverydev{app}:1"}
    message = event or f"(service {name}) has reached a steady state."
    return {"serviceName": name, "serviceArn": f"arn:aws:ecs:{REGION}:{ACCOUNT}:service/{CLUSTER_NAME}/{name}",
            "clusterArn": CLUSTER_ARN, "status": "ACTIVE", "desiredCount": desired, "runningCount": running,
            "pendingCount": desired - running, "launchType": "FARGATE",
            "deployments": [primary] + [active] * (deployments - 1),
            "events": [{"id": "0b6f7a8e-1111-4c2d-9e3f-000000000001", "createdAt": NOW, "message": message},
                       {"id": "0b6f7a8e-1111-4c2d-9e3f-000000000000", "createdAt": NOW,
                        "message": f"(service {name}) has started 1 tasks: (task 0f1e2d3c4b5a)."}]}


def expect_services(aws, *services: dict):
    aws.stub("ecs").add_response("describe_services", {"services": list(services), "failures": []},
                                 {"cluster": CLUSTER_NAME, "services": [s["serviceName"] for s in services]})


def seed_the_bucket(s3, bucket, tmp_path, names=SEEDED):
    for name in names:
        publish(s3, bucket, tmp_path, name, name.encode())


# ---- (a) to (d) -------------------------------------------------------------------------------------------

def test_a_an_empty_account_deploys_stopped_seeds_deploys_and_serves(tmp_path, aws, s3, bucket, runner):
    expect_no_stack(aws, SERVICE_STACK)                  # nothing deployed, so nothing seeded
    expect_seed(aws, runner, bucket=bucket)              # after the first deploy
    expect_stack(aws, SERVICE_STACK, service_outputs(bucket))  # after the second
    expect_services(aws, ecs_service("web"), ecs_service("doc-ocr"))

    result = run_up(tmp_path, aws, s3, "--skip-preflight")

    assert result.code == 0, result.err
    assert result.deploys == [STOPPED, STARTED]
    assert result.out == f"web: {WEB_URL}\ndoc-ocr: no ingress\n"
    assert "seed: paddleocr published" in result.err  # the seed's log, followed
    assert "up: seeding, as make seed STAGE=dev does" in result.err
    assert "up: web: steady, 1 of 1 tasks running, rollout COMPLETED, 1 deployment(s)" in result.err
    assert result.err.splitlines()[-1] == "up: stage dev is serving"


def test_b_a_seeded_stage_is_one_deploy_then_the_wait(tmp_path, aws, s3, bucket):
    seed_the_bucket(s3, bucket, tmp_path)
    expect_stack(aws, SERVICE_STACK, service_outputs(bucket))
    expect_stack(aws, SERVICE_STACK, service_outputs(bucket))
    expect_services(aws, ecs_service("web", running=1, desired=2, rollout="IN_PROGRESS", deployments=2),
                    ecs_service("doc-ocr"))
    expect_services(aws, ecs_service("web", running=2, desired=2))  # only the app still pending is asked again

    result = run_up(tmp_path, aws, s3, "--skip-preflight", codes=(0,))

    assert result.code == 0, result.err
    assert result.deploys == [STARTED]
    assert result.sleeps == [up_tool.POLL_SECONDS]
    assert f"up: every model of stage dev is in s3://{bucket}/models/" in result.err
    assert "up: web: 1 of 2 tasks running, rollout IN_PROGRESS, 2 deployment(s)" in result.err
    assert result.out == f"web: {WEB_URL}\ndoc-ocr: no ingress\n"


def test_c_a_failing_seed_stops_before_the_second_deploy_and_says_what_to_run(tmp_path, aws, s3, bucket, runner):
    expect_no_stack(aws, SERVICE_STACK)
    expect_seed(aws, runner, exit_code=1, bucket=bucket)

    result = run_up(tmp_path, aws, s3, "--skip-preflight", codes=(0,))

    assert result.code == 1
    assert result.deploys == [STOPPED]
    assert "seed: seeding failed: container seed exit code 1" in result.err
    assert result.err.splitlines()[-1] == ("up: error: seeding failed (exit 1, its log above): fix what it says, then "
                                           "run make seed STAGE=dev and make up STAGE=dev again")
    assert result.out == ""


def test_d_a_service_that_never_gets_steady_times_out_naming_the_app_and_its_last_event(tmp_path, aws, s3, bucket):
    apps = {"web": SERVICES["web"]}
    stage = {**STAGE, "apps": {"web": {"models": ["paddleocr"]}}}
    seed_the_bucket(s3, bucket, tmp_path, ["paddleocr"])
    expect_stack(aws, SERVICE_STACK, service_outputs(bucket, apps))
    expect_stack(aws, SERVICE_STACK, service_outputs(bucket, apps))
    stuck = (f"(service {SERVICES['web']}) was unable to place a task. Reason: You've reached the limit on the number "
             "of vCPUs you can run concurrently.")
    for _ in range(5):  # at 0, 15, 30, 45 and 60 s of a one-minute timeout
        expect_services(aws, ecs_service("web", running=0, rollout="IN_PROGRESS", event=stuck))

    result = run_up(tmp_path, aws, s3, "--skip-preflight", "--timeout", "1", stage=stage, codes=(0,))

    assert result.code == 1
    assert result.sleeps == [up_tool.POLL_SECONDS] * 4
    assert result.err.splitlines()[-1] == (
        f"up: error: app web is not steady after 1 min (0 of 1 tasks running, rollout IN_PROGRESS, 1 deployment(s); "
        f"last event: \"{stuck}\"): see its events and stopped tasks (aws ecs describe-services --cluster "
        f"{CLUSTER_NAME} --services {SERVICES['web']}), fix the cause, then run make up STAGE=dev again")
    assert result.out == ""


# ---- the other ways a step fails ---------------------------------------------------------------------------

def test_a_live_stage_missing_a_model_seeds_it_first_and_never_stops_the_services(tmp_path, aws, s3, bucket, runner):
    seed_the_bucket(s3, bucket, tmp_path, ["paddleocr"])
    expect_stack(aws, SERVICE_STACK, service_outputs(bucket))
    expect_seed(aws, runner, only=["PP_L2_material_agnostic"], bucket=bucket)
    expect_stack(aws, SERVICE_STACK, service_outputs(bucket))
    expect_services(aws, ecs_service("web"), ecs_service("doc-ocr"))

    result = run_up(tmp_path, aws, s3, "--skip-preflight", codes=(0,))

    assert result.code == 0, result.err
    assert result.deploys == [STARTED]
    assert (f"up: s3://{bucket}/models/ has no LATEST of PP_L2_material_agnostic: seeding them with the deployed "
            "stack before the deploy that serves them") in result.err
    assert 'up: seeding, as make seed STAGE=dev SEED_ARGS="--only PP_L2_material_agnostic" does' in result.err


def test_a_failed_preflight_stops_before_anything_is_deployed(tmp_path, aws, s3):
    aws.stub("sts").add_client_error("get_caller_identity", service_error_code="ExpiredToken", http_status_code=403,
                                     service_message="The security token included in the request is expired")

    result = run_up(tmp_path, aws, s3, codes=())

    assert result.code == 1
    assert result.deploys == []
    assert "FAIL credentials: AWS rejected the credentials (ExpiredToken)" in result.err
    assert result.err.splitlines()[-1] == ("up: error: preflight failed (credentials): fix the FAIL lines above, then "
                                           "run make up STAGE=dev again (SKIP_PREFLIGHT=1 deploys without it)")


def test_a_passing_preflight_goes_on_to_the_deploy(tmp_path, aws, s3, bucket):
    stage = {**STAGE, "apps": {"web": {"models": ["paddleocr"]}}}
    apps = {"web": SERVICES["web"]}
    seed_the_bucket(s3, bucket, tmp_path, ["paddleocr"])
    expect_ready_account(aws)                                        # preflight's calls
    expect_stack(aws, SERVICE_STACK, service_outputs(bucket, apps, urls={}))  # up: is it seeded?
    expect_stack(aws, SERVICE_STACK, service_outputs(bucket, apps, urls={}))  # after the deploy
    expect_services(aws, ecs_service("web"))

    result = run_up(tmp_path, aws, s3, stage=stage, codes=(0,))

    assert result.code == 0, result.err
    assert result.deploys == [STARTED]
    lines = result.err.splitlines()
    assert lines[0] == f"up: preflight of stage dev in {REGION}"
    assert [line.split(":")[0] for line in lines[1:14]] == [
        f"{status} {name}" for status, name in zip(
            ["ok  ", "ok  ", "ok  ", "ok  ", "skip", "skip", "skip", "skip", "skip", "ok  ", "ok  ", "ok  ", "skip"],
            [check.name for check in CHECKS], strict=True)]
    assert result.out == "web: no ingress\n"


def test_a_failing_deploy_says_what_to_run_next(tmp_path, aws, s3, bucket):
    seed_the_bucket(s3, bucket, tmp_path)
    expect_stack(aws, SERVICE_STACK, service_outputs(bucket))

    result = run_up(tmp_path, aws, s3, "--skip-preflight", "--cdk-args", "--require-approval never", codes=(1,))

    assert result.code == 1
    assert result.deploys == [[*STARTED, "--require-approval", "never"]]
    assert result.err.splitlines()[-1] == (
        "up: error: the deploy failed (cdk exit 1, its output above); a service that rolled back says why in its "
        "stopped tasks (aws ecs describe-tasks): fix the cause, then run make up STAGE=dev again")


def test_a_failing_first_deploy_stops_before_the_seed(tmp_path, aws, s3):
    expect_no_stack(aws, SERVICE_STACK)

    result = run_up(tmp_path, aws, s3, "--skip-preflight", codes=(1,))

    assert (result.code, result.deploys) == (1, [STOPPED])
    assert result.err.splitlines()[-1] == ("up: error: the deploy with the services stopped failed (cdk exit 1, its "
                                           "output above): fix the cause, then run make up STAGE=dev again")


def test_a_rolled_back_deployment_fails_at_once_with_its_reason(tmp_path, aws, s3, bucket):
    seed_the_bucket(s3, bucket, tmp_path)
    expect_stack(aws, SERVICE_STACK, service_outputs(bucket))
    expect_stack(aws, SERVICE_STACK, service_outputs(bucket))
    failed = ecs_service("web", running=0, rollout="FAILED", event=f"(service {SERVICES['web']}) (deployment "
                         "ecs-svc/1111111111111111111) deployment failed: tasks failed to start.")
    failed["deployments"][0]["rolloutStateReason"] = "ECS deployment circuit breaker: tasks failed to start."
    expect_services(aws, failed, ecs_service("doc-ocr"))

    result = run_up(tmp_path, aws, s3, "--skip-preflight", codes=(0,))

    assert result.code == 1 and result.sleeps == []
    last = result.err.splitlines()[-1]
    assert last.startswith("up: error: app web: its deployment failed (ECS deployment circuit breaker: tasks failed "
                           "to start.); last event: ")
    assert last.endswith(f"--service-name {SERVICES['web']} --desired-status STOPPED), fix the cause, then run make "
                         "up STAGE=dev again")


def test_a_bad_timeout_is_a_usage_error(tmp_path, aws, s3):
    with pytest.raises(SystemExit) as exit_:
        run_up(tmp_path, aws, s3, "--timeout", "0")
    assert exit_.value.code == 2


# ---- the deploy runner and the Makefile --------------------------------------------------------------------

def test_the_deploys_run_the_pinned_cli_with_the_virtualenv_first_on_path(tmp_path, monkeypatch):
    """A stand-in node_modules/.bin/cdk (a real process) records what it was given."""
    cli = tmp_path / "node_modules" / ".bin" / "cdk"
    cli.parent.mkdir(parents=True)
    record = tmp_path / "record"
    cli.write_text(f'#!/bin/sh\necho "$PWD|$*|$PATH|$CDK_DISABLE_VERSION_CHECK" > {record}\nexit 3\n')
    cli.chmod(cli.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setattr(up_tool, "REPO", tmp_path)

    assert up_tool.cdk(["deploy", "--all", "-c", "stage=dev"]) == 3

    cwd, args, path, check = record.read_text().strip().split("|")
    assert (cwd, args, check) == (str(tmp_path), "deploy --all -c stage=dev", "true")
    assert path.split(os.pathsep)[0] == str(tmp_path / ".venv" / "bin")


def test_a_missing_cli_is_a_usage_error(tmp_path, monkeypatch):
    monkeypatch.setattr(up_tool, "REPO", tmp_path)
    with pytest.raises(up_tool.SeedError) as error:
        up_tool.cdk(["deploy"])
    assert (str(error.value), error.value.exit_code) == ("node_modules/.bin/cdk not found: run make install", 2)


@pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")
def test_make_up_passes_the_stage_and_the_options():
    def dry(*args):
        proc = subprocess.run(["make", "--no-print-directory", "-n", "up", *args], cwd=REPO, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.strip().splitlines()[-1]

    assert dry("STAGE=prod") == ".venv/bin/python -m tools.up --stage prod"
    assert dry("SKIP_PREFLIGHT=1", 'CDK_ARGS=--require-approval never', "UP_ARGS=--timeout 45") == (
        '.venv/bin/python -m tools.up --stage dev --skip-preflight --cdk-args "--require-approval never" --timeout 45')


def test_no_credentials_as_a_real_process_is_one_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_CONFIG_FILE=str(tmp_path / "none"), AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"),
               AWS_EC2_METADATA_DISABLED="true", AWS_ENDPOINT_URL="http://127.0.0.1:9",
               JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION="20")
    proc = subprocess.run([sys.executable, "-m", "tools.up", "--stage", "dev", "--region", REGION],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "FAIL credentials: no AWS credentials found" in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("up: error: preflight failed (credentials")
    assert "Traceback" not in proc.stderr
