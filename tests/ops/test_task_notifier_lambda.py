"""The task notifier Lambda (lambdas/task_notifier/handler.py) on ECS Task State Change events as EventBridge
delivers them, with CloudWatch Logs GetLogEvents and SNS Publish stubbed by botocore's Stubber (requests
checked against the service models, responses against their output shapes)."""

from __future__ import annotations

import copy

import pytest
from botocore.stub import ANY, Stubber

from seed_fakes import ACCOUNT, CLUSTER_ARN, LOG_GROUP, REGION, REPO, TASK_ARN, TASK_DEFINITION_ARN, TASK_ID, \
    load_handler, make_client
from tests.emf_check import dimension_sets, namespace, records, values

PATH = REPO / "lambdas" / "task_notifier" / "handler.py"
SIGN_LOG_GROUP = "/model-delivery/dev/ModelDelivery-dev-Service/Signing/Logs"
SIGN_TASK_DEFINITION_ARN = f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/ModelDeliverydevSign:2"
TOPIC_ARN = f"arn:aws:sns:{REGION}:{ACCOUNT}:ModelDelivery-dev-Service-AlarmsTopic1A2B3C4D-5E6F7G8H9I0J"
SERVICE_TASK_DEFINITION_ARN = f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/ModelDeliverydevServiceTask:7"
SERVICE_TASK_ID = "9a8b7c6d5e4f30211203f4e5d6c7b8a9"
SERVICE_TASK_ARN = f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/{CLUSTER_ARN.rsplit('/', 1)[1]}/{SERVICE_TASK_ID}"
ENV = {
    "TOPIC_ARN": TOPIC_ARN, "STAGE": "dev", "METRICS_NAMESPACE": "ModelDelivery",
    "SEED_TASK_FAMILY": "ModelDeliverydevSeed", "SEED_CONTAINER_NAME": "seed", "SEED_LOG_GROUP_NAME": LOG_GROUP,
    "SEED_LOG_STREAM_PREFIX": "seed",
    "SIGN_TASK_FAMILY": "ModelDeliverydevSign", "SIGN_CONTAINER_NAME": "sign", "SIGN_LOG_GROUP_NAME": SIGN_LOG_GROUP,
    "SIGN_LOG_STREAM_PREFIX": "sign",
}
STREAM = f"seed/seed/{TASK_ID}"
SUMMARY = "seed: 1 published, 1 unchanged, 1 failed"
FAILED = "FAILED CLS_GMM_WSe2: Zenodo 15765516/CLS_GMM_WSe2.zip: md5 mismatch (expected 0f3c, got 9d41); re-run"
# The end of a seeding task's log as the awslogs driver stores it: stderr log lines, the table, the summary, the
# FAILED lines, then modelsync's own EMF records.
SEED_LOG = [
    "INFO SEG_M2F_GrapheneL: published 3f9c1a7e5b2d4c60 (12.3 s)",
    "ERROR CLS_GMM_WSe2: failed: Zenodo 15765516/CLS_GMM_WSe2.zip: md5 mismatch",
    "MODEL              STATUS     VERSION           SIZE      DOWNLOADED  UPLOADED   SECONDS",
    "SEG_M2F_GrapheneL  published  3f9c1a7e5b2d4c60  160.2 MiB 160.2 MiB   160.2 MiB  12.3",
    "EFS mirror /mnt/models: ok, 12 files (160.2 MiB) copied, 0 already in place, 3.1 s",
    SUMMARY,
    FAILED,
    '{"_aws": {"CloudWatchMetrics": []}, "event": "metrics", "job": "seed"}',
]
VARIABLES = tuple(ENV)


def stopped_event(detail_overrides: dict, containers: list[dict]) -> dict:
    """An "ECS Task State Change" event for a stopped Fargate task, shaped as ECS sends it."""
    detail = {
        "attachments": [{"id": "1789bcae-ddfb-4d10-8ebe-8ac87ddba5b8", "type": "eni", "status": "DELETED",
                         "details": [{"name": "subnetId", "value": "subnet-0aaa1111"}]}],
        "availabilityZone": f"{REGION}a", "clusterArn": CLUSTER_ARN, "connectivity": "CONNECTED",
        "containers": containers, "cpu": "2048", "createdAt": "2026-11-25T10:01:02.345Z",
        "desiredStatus": "STOPPED", "group": "family:ModelDeliverydevSeed", "launchType": "FARGATE",
        "lastStatus": "STOPPED", "memory": "8192", "platformVersion": "1.4.0", "startedBy": "seed-runner",
        "stopCode": "EssentialContainerExited", "stoppedAt": "2026-11-25T10:15:40.123Z",
        "stoppedReason": "Essential container in task exited", "taskArn": TASK_ARN,
        "taskDefinitionArn": TASK_DEFINITION_ARN, "updatedAt": "2026-11-25T10:15:40.123Z", "version": 5,
        **detail_overrides,
    }
    return {"version": "0", "id": "3317b2af-7005-947d-b652-f55e762e571a", "detail-type": "ECS Task State Change",
            "source": "aws.ecs", "account": ACCOUNT, "time": "2026-11-25T10:15:42Z", "region": REGION,
            "resources": [detail["taskArn"]], "detail": detail}


def seed_event(exit_code: int | None = 1, **overrides) -> dict:
    seed = {"containerArn": f"arn:aws:ecs:{REGION}:{ACCOUNT}:container/{TASK_ID}/5c1e2f3a", "lastStatus": "STOPPED",
            "name": "seed", "taskArn": TASK_ARN, "image": "111111111111.dkr.ecr.eu-west-1.amazonaws.com/md:seed"}
    if exit_code is not None:
        seed["exitCode"] = exit_code
    if "reason" in overrides:
        seed["reason"] = overrides.pop("reason")
    return stopped_event(overrides, [seed])


WATCH = {"app": "ocr", "family": "ModelDeliverydevServiceTask", "init_container": "model-pull"}


def service_event(init: dict, app: dict, watch: dict = WATCH, **overrides) -> dict:
    """What an app's rule delivers: the stopped task's event, wrapped with the app it watches (the rule's
    InputTemplate `{"watch": {...}, "event": <aws.events.event.json>}`, model_delivery/notifier.py)."""
    base = {"taskArn": SERVICE_TASK_ARN, "lastStatus": "STOPPED"}
    event = stopped_event({"taskArn": SERVICE_TASK_ARN, "taskDefinitionArn": SERVICE_TASK_DEFINITION_ARN,
                           "group": "service:ModelDelivery-dev-Service-OcrServiceA1B2C3", "startedBy": "ecs-svc/92233",
                           **overrides},
                          [{**base, "name": "model-pull", **init}, {**base, "name": "app", **app}])
    return {"watch": watch, "event": event}


def log_page(lines: list[str], start_ms: int = 1_764_065_700_000) -> dict:
    return {"events": [{"timestamp": start_ms + i, "message": line, "ingestionTime": start_ms + i + 900}
                       for i, line in enumerate(lines)],
            "nextForwardToken": "f/38795301428331225632848392839102938475610293847561029384",
            "nextBackwardToken": "b/38795301428331225632848392839102938475610293847561029380"}


LOG_REQUEST = {"logGroupName": LOG_GROUP, "logStreamName": STREAM, "startFromHead": False, "limit": 200}


class Sleeps(list):
    def __call__(self, seconds):
        self.append(seconds)


@pytest.fixture
def notifier(monkeypatch):
    return load_handler(monkeypatch, ENV, path=PATH, variables=VARIABLES)


@pytest.fixture
def aws():
    sns, logs = make_client("sns"), make_client("logs")
    with Stubber(sns) as sns_stub, Stubber(logs) as logs_stub:
        yield sns, sns_stub, logs, logs_stub
        sns_stub.assert_no_pending_responses()
        logs_stub.assert_no_pending_responses()


def expect_publish(stub, subject: str, message: str) -> None:
    stub.add_response("publish", {"MessageId": "8f2b1c3d-4e5f-5a6b-9c7d-0e1f2a3b4c5d"},
                      {"TopicArn": TOPIC_ARN, "Subject": subject, "Message": message})


def test_a_failed_seed_is_published_with_its_exit_code_reason_and_summary(notifier, aws, capsys):
    sns, sns_stub, logs, logs_stub = aws
    logs_stub.add_response("get_log_events", log_page(SEED_LOG), LOG_REQUEST)
    expect_publish(sns_stub, "Model delivery dev: seed FAILED (exit 1)", "\n".join([
        f"Seeding task {TASK_ID} (dev) stopped: container seed exit code 1",
        "Stopped reason: Essential container in task exited (EssentialContainerExited)",
        f"Summary: {SUMMARY}",
        FAILED,
        f"Log: group {LOG_GROUP}, stream {STREAM}",
        f"Task: {TASK_ARN}",
        'What to do: docs/runbook.md, "Seed results".',
    ]))

    result = notifier.handle(notifier._CONFIG, seed_event(1), sns, logs, sleep=Sleeps())

    assert result == {"action": "seed-result", "taskArn": TASK_ARN, "exitCode": 1, "ok": False, "summary": SUMMARY}
    [record] = records(capsys.readouterr().out)
    assert namespace(record) == "ModelDelivery" and dimension_sets(record) == [{"Stage": "dev"}]
    assert values(record) == {"SeedTasks": (1, "Count"), "SeedTaskFailed": (1, "Count")}


def test_a_successful_seed_is_published_too(notifier, aws, capsys):
    sns, sns_stub, logs, logs_stub = aws
    ok_log = [line for line in SEED_LOG if not line.startswith("FAILED")]
    ok_log[ok_log.index(SUMMARY)] = "seed: 2 published, 1 unchanged, 0 failed"
    logs_stub.add_response("get_log_events", log_page(ok_log), LOG_REQUEST)
    sns_stub.add_response("publish", {"MessageId": "1"}, {
        "TopicArn": TOPIC_ARN, "Subject": "Model delivery dev: seed succeeded (exit 0)", "Message": ANY})

    result = notifier.handle(notifier._CONFIG, seed_event(0), sns, logs, sleep=Sleeps())

    assert result["ok"] is True and result["summary"] == "seed: 2 published, 1 unchanged, 0 failed"
    assert values(records(capsys.readouterr().out)[0])["SeedTaskFailed"] == (0, "Count")


def test_lines_that_arrive_after_the_stopped_event_are_waited_for(notifier, aws):
    sns, sns_stub, logs, logs_stub = aws
    early = SEED_LOG[:3]  # the table has started, the summary is not there yet
    logs_stub.add_response("get_log_events", log_page(early), LOG_REQUEST)
    older = {**LOG_REQUEST, "nextToken": log_page(early)["nextBackwardToken"]}
    logs_stub.add_response("get_log_events", {**log_page([]), "events": []}, older)  # nothing older
    logs_stub.add_response("get_log_events", log_page(SEED_LOG), LOG_REQUEST)
    sns_stub.add_response("publish", {"MessageId": "2"}, {"TopicArn": TOPIC_ARN, "Subject":
                          "Model delivery dev: seed FAILED (exit 1)", "Message": ANY})
    sleeps = Sleeps()

    result = notifier.handle(notifier._CONFIG, seed_event(1), sns, logs, sleep=sleeps)

    assert result["summary"] == SUMMARY
    assert sleeps == [notifier.LOG_WAIT_SECONDS]


def test_a_seed_killed_for_memory_names_the_container_reason(notifier, aws):
    sns, sns_stub, logs, logs_stub = aws
    logs_stub.add_response("get_log_events", log_page(SEED_LOG[:2]), LOG_REQUEST)  # killed before its summary
    for _ in range(notifier.LOG_ATTEMPTS - 1):
        logs_stub.add_response("get_log_events", {**log_page([]), "events": []},
                               {**LOG_REQUEST, "nextToken": log_page([])["nextBackwardToken"]})
        logs_stub.add_response("get_log_events", log_page(SEED_LOG[:2]), LOG_REQUEST)
    logs_stub.add_response("get_log_events", {**log_page([]), "events": []},
                           {**LOG_REQUEST, "nextToken": log_page([])["nextBackwardToken"]})
    expect_publish(sns_stub, "Model delivery dev: seed FAILED (exit 137)", "\n".join([
        f"Seeding task {TASK_ID} (dev) stopped: container seed exit code 137",
        "Stopped reason: Essential container in task exited (EssentialContainerExited)",
        "Container reason: OutOfMemoryError: Container killed due to memory usage",
        "Summary: none (not found in the log; the task may have run another command, or ended before its summary)",
        f"Log: group {LOG_GROUP}, stream {STREAM}",
        f"Task: {TASK_ARN}",
        'What to do: docs/runbook.md, "Seed results".',
    ]))
    sleeps = Sleeps()

    result = notifier.handle(notifier._CONFIG, seed_event(137, reason="OutOfMemoryError: Container killed due to "
                                                                        "memory usage"), sns, logs, sleep=sleeps)

    assert result["ok"] is False and len(sleeps) == notifier.LOG_ATTEMPTS - 1


def test_a_seed_that_never_started_is_still_published(notifier, aws):
    sns, sns_stub, logs, logs_stub = aws
    for _ in range(notifier.LOG_ATTEMPTS):
        logs_stub.add_client_error("get_log_events", service_error_code="ResourceNotFoundException",
                                   service_message="The specified log stream does not exist.", http_status_code=400,
                                   expected_params=LOG_REQUEST)
    expect_publish(sns_stub, "Model delivery dev: seed FAILED (no exit code)", "\n".join([
        f"Seeding task {TASK_ID} (dev) stopped: container seed has no exit code (it did not run to its end)",
        "Stopped reason: CannotPullContainerError: pull image manifest has been retried 5 time(s): failed to resolve "
        "ref 111111111111.dkr.ecr.eu-west-1.amazonaws.com/md:seed: not found (TaskFailedToStart)",
        "Summary: none (no log stream: the container never started, or wrote nothing; the task may have run another "
        "command, or ended before its summary)",
        f"Log: group {LOG_GROUP}, stream {STREAM}",
        f"Task: {TASK_ARN}",
        'What to do: docs/runbook.md, "Seed results".',
    ]))

    event = seed_event(None, stopCode="TaskFailedToStart", stoppedReason=(
        "CannotPullContainerError: pull image manifest has been retried 5 time(s): failed to resolve ref "
        "111111111111.dkr.ecr.eu-west-1.amazonaws.com/md:seed: not found"))
    assert notifier.handle(notifier._CONFIG, event, sns, logs, sleep=Sleeps())["exitCode"] is None


def test_an_unreadable_log_does_not_stop_the_notification(notifier, aws):
    sns, sns_stub, logs, logs_stub = aws
    logs_stub.add_client_error("get_log_events", service_error_code="AccessDeniedException",
                               service_message="not authorized to perform: logs:GetLogEvents", http_status_code=400,
                               expected_params=LOG_REQUEST)
    sns_stub.add_response("publish", {"MessageId": "3"}, {"TopicArn": TOPIC_ARN, "Subject":
                          "Model delivery dev: seed FAILED (exit 1)", "Message": ANY})
    sleeps = Sleeps()

    result = notifier.handle(notifier._CONFIG, seed_event(1), sns, logs, sleep=sleeps)

    assert result["summary"] == ("unavailable (the log could not be read: AccessDeniedException: not authorized to "
                                 "perform: logs:GetLogEvents)")
    assert sleeps == []  # a refusal is not waited out


def test_a_refused_publish_fails_the_invocation_so_it_is_retried(notifier, aws, capsys):
    sns, sns_stub, logs, logs_stub = aws
    logs_stub.add_response("get_log_events", log_page(SEED_LOG), LOG_REQUEST)
    sns_stub.add_client_error("publish", service_error_code="KMSAccessDenied", http_status_code=400,
                              service_message="User is not authorized to perform kms:GenerateDataKey")

    with pytest.raises(notifier.ClientError, match="KMSAccessDenied"):
        notifier.handle(notifier._CONFIG, seed_event(1), sns, logs, sleep=Sleeps())
    assert not records(capsys.readouterr().out)  # no metric for a result that was not delivered


def test_a_failed_init_container_is_an_init_failure_metric_and_nothing_is_published(notifier, aws, capsys):
    sns, _, logs, _ = aws  # nothing queued: any SNS or Logs call would fail the test
    event = service_event({"exitCode": 1}, {"reason": "CannotStartContainerError: dependency graph: failed to "
                                                      "resolve container ordering dependency"},
                          stoppedReason="Essential container in task exited")

    result = notifier.handle(notifier._CONFIG, event, sns, logs, sleep=Sleeps())

    assert result == {"action": "init-failure", "taskArn": SERVICE_TASK_ARN, "exitCode": 1}
    [record] = records(capsys.readouterr().out)
    # By app (its alarm) and summed over the stage (the dashboard).
    assert values(record) == {"InitFailures": (1, "Count")}
    assert dimension_sets(record) == [{"Stage": "dev", "App": "ocr"}, {"Stage": "dev"}]
    assert record["logStream"] == f"service/model-pull/{SERVICE_TASK_ID}"
    assert record["detail"].startswith("init container model-pull exited 1; task stopped: Essential container")


def test_a_task_whose_mirror_mount_was_refused_is_an_init_failure(notifier, aws, capsys):
    sns, _, logs, _ = aws
    event = service_event({}, {}, stopCode="TaskFailedToStart", stoppedReason=(
        "ResourceInitializationError: failed to invoke EFS utils commands to set up EFS volumes: stderr: b'mount.nfs4:"
        " access denied by server while mounting 127.0.0.1:/'"))

    assert notifier.handle(notifier._CONFIG, event, sns, logs, sleep=Sleeps())["action"] == "init-failure"
    assert values(records(capsys.readouterr().out)[0]) == {"InitFailures": (1, "Count")}


@pytest.mark.parametrize("init, app, stop_code", [
    # The init container succeeded; the app was stopped by a deployment (143 from SIGTERM): an event pattern that
    # cannot tie exitCode to the container's own name lets this through, and it is no init failure.
    ({"exitCode": 0}, {"exitCode": 143}, "ServiceSchedulerInitiated"),
    ({"exitCode": 143}, {}, "ServiceSchedulerInitiated"),  # stopped while still pulling: scale-in
    ({"exitCode": 137}, {}, "UserInitiated"),
    ({"exitCode": 0}, {"exitCode": 1}, "EssentialContainerExited"),  # the app crashed: not model delivery
])
def test_stops_that_are_no_init_failure_count_zero(notifier, aws, capsys, init, app, stop_code):
    sns, _, logs, _ = aws
    result = notifier.handle(notifier._CONFIG, service_event(init, app, stopCode=stop_code), sns, logs,
                             sleep=Sleeps())
    assert result["action"] == "not-an-init-failure"
    assert values(records(capsys.readouterr().out)[0]) == {"InitFailures": (0, "Count")}


def test_other_tasks_are_ignored_and_other_events_refused(notifier, aws, capsys):
    sns, _, logs, _ = aws
    other = seed_event(1, taskDefinitionArn=f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/SomeoneElse:1")
    assert notifier.handle(notifier._CONFIG, other, sns, logs)["action"] == "ignored"
    # An app's rule that delivers a task of another family (or the seeding task) counts nothing.
    mismatched = service_event({"exitCode": 1}, {}, watch={**WATCH, "family": "AnotherApp"})
    assert notifier.handle(notifier._CONFIG, mismatched, sns, logs)["action"] == "ignored"
    wrapped_seed = {"watch": WATCH, "event": seed_event(1)}
    assert notifier.handle(notifier._CONFIG, wrapped_seed, sns, logs)["action"] == "ignored"
    assert not records(capsys.readouterr().out)
    with pytest.raises(notifier.InvalidEvent, match="the rule's input 'watch' needs the strings"):
        notifier.handle(notifier._CONFIG, {"watch": {"app": 1}, "event": seed_event(1)}, sns, logs)
    running = copy.deepcopy(seed_event(1))
    running["detail"]["lastStatus"] = "RUNNING"
    for event, complaint in ((running, "lastStatus is STOPPED"), ({"source": "aws.s3"}, "source 'aws.ecs'"),
                             (["not", "an", "event"], "source 'aws.ecs'")):
        with pytest.raises(notifier.InvalidEvent, match=complaint):
            notifier.handle(notifier._CONFIG, event, sns, logs)


def test_without_seeding_the_seed_variables_may_all_be_absent(monkeypatch, aws):
    sns, _, logs, _ = aws
    env = {k: v for k, v in ENV.items() if not k.startswith(("SEED_", "SIGN_"))}
    notifier = load_handler(monkeypatch, env, path=PATH, variables=VARIABLES)
    assert notifier._CONFIG.jobs == ()
    assert notifier.handle(notifier._CONFIG, seed_event(1), sns, logs)["action"] == "ignored"


@pytest.mark.parametrize("env, complaint", [
    ({k: v for k, v in ENV.items() if k != "TOPIC_ARN"}, "environment variable TOPIC_ARN is missing"),
    ({**ENV, "STAGE": "  "}, "environment variable STAGE is missing or empty"),
    ({k: v for k, v in ENV.items() if k != "SEED_LOG_GROUP_NAME"}, "SEED_LOG_GROUP_NAME is missing: set all four"),
])
def test_a_broken_environment_is_named_on_every_invocation(monkeypatch, env, complaint):
    notifier = load_handler(monkeypatch, env, path=PATH, variables=VARIABLES)  # the cold start survives
    with pytest.raises(notifier.ConfigError, match=complaint):
        notifier.handler(seed_event(1), None)


def test_the_metrics_it_writes_are_the_ones_the_alarms_and_dashboard_read(notifier, aws, capsys):
    from model_delivery.metrics import NOTIFIER_METRICS

    sns, sns_stub, logs, logs_stub = aws
    logs_stub.add_response("get_log_events", log_page(SEED_LOG), LOG_REQUEST)
    sns_stub.add_response("publish", {"MessageId": "4"}, {"TopicArn": TOPIC_ARN, "Subject": ANY, "Message": ANY})
    notifier.handle(notifier._CONFIG, seed_event(1), sns, logs, sleep=Sleeps())
    logs_stub.add_response("get_log_events", log_page(SIGN_LOG), SIGN_LOG_REQUEST)
    sns_stub.add_response("publish", {"MessageId": "5"}, {"TopicArn": TOPIC_ARN, "Subject": ANY, "Message": ANY})
    notifier.handle(notifier._CONFIG, sign_event(0), sns, logs, sleep=Sleeps())
    notifier.handle(notifier._CONFIG, service_event({"exitCode": 2}, {}), sns, logs, sleep=Sleeps())
    written = {name for record in records(capsys.readouterr().out) for name in values(record)}
    assert written == set(NOTIFIER_METRICS)


SIGN_TASK_ID = "1a2b3c4d5e6f708192a3b4c5d6e7f809"
SIGN_TASK_ARN = f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/{CLUSTER_ARN.rsplit('/', 1)[1]}/{SIGN_TASK_ID}"
SIGN_LOG = [
    "MODEL              STATUS  VERSION           FILES  SIZE       SECONDS",
    "SEG_M2F_GrapheneL  signed  3f9c1a7e5b2d4c60      2  160.2 MiB      1.9",
    "paddleocr          refused 0a1b2c3d4e5f6a7b      9  180.0 MiB      0.4",
    "sign: 1 signed, 1 refused, 0 failed",
    "FAILED paddleocr: official_models/UVDoc/inference.pdiparams: size 4096 in the bucket, 8192 in the manifest",
]
SIGN_LOG_REQUEST = {"logGroupName": SIGN_LOG_GROUP, "logStreamName": f"sign/sign/{SIGN_TASK_ID}",
                    "startFromHead": False, "limit": 200}


def sign_event(exit_code: int) -> dict:
    sign = {"containerArn": f"arn:aws:ecs:{REGION}:{ACCOUNT}:container/{SIGN_TASK_ID}/7d2f", "lastStatus": "STOPPED",
            "name": "sign", "taskArn": SIGN_TASK_ARN, "exitCode": exit_code,
            "image": "111111111111.dkr.ecr.eu-west-1.amazonaws.com/md:service"}
    return stopped_event({"taskArn": SIGN_TASK_ARN, "taskDefinitionArn": SIGN_TASK_DEFINITION_ARN,
                          "group": "family:ModelDeliverydevSign", "startedBy": f"sign-after-{TASK_ID}"}, [sign])


def test_a_signing_task_result_is_published_with_its_summary_and_failures(notifier, aws, capsys):
    """The signing task (after every good seed) is what makes versions live: its result reaches the topic too."""
    sns, sns_stub, logs, logs_stub = aws
    logs_stub.add_response("get_log_events", log_page(SIGN_LOG), SIGN_LOG_REQUEST)
    expect_publish(sns_stub, "Model delivery dev: sign FAILED (exit 1)", "\n".join([
        f"Signing task {SIGN_TASK_ID} (dev) stopped: container sign exit code 1",
        "Stopped reason: Essential container in task exited (EssentialContainerExited)",
        "Summary: sign: 1 signed, 1 refused, 0 failed",
        SIGN_LOG[-1],
        f"Log: group {SIGN_LOG_GROUP}, stream sign/sign/{SIGN_TASK_ID}",
        f"Task: {SIGN_TASK_ARN}",
        'What to do: docs/runbook.md, "Seed results".',
    ]))

    result = notifier.handle(notifier._CONFIG, sign_event(1), sns, logs, sleep=Sleeps())

    assert result["action"] == "sign-result" and result["ok"] is False
    [record] = records(capsys.readouterr().out)
    assert values(record) == {"SignTasks": (1, "Count"), "SignTaskFailed": (1, "Count")}


def test_it_recognizes_the_summary_the_seed_really_prints(notifier):
    from modelsync.mirror import MirrorOutcome
    from modelsync.seed.run import ModelOutcome, SeedReport, format_report

    report = SeedReport(models=[ModelOutcome("A", "published", "0123456789abcdef", 10, 10, 10, 1.0),
                                ModelOutcome("B", "failed", error="Zenodo 1/B.zip: md5 mismatch")],
                        mirror=MirrorOutcome(root="/mnt/models", ok=True))
    lines = format_report(report).splitlines()
    [summary] = [line for line in lines if notifier.SUMMARY.match(line)]
    assert summary == "seed: 1 published, 0 unchanged, 1 failed"
    assert lines[lines.index(summary) + 1] == "FAILED B: Zenodo 1/B.zip: md5 mismatch"
