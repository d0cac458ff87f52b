"""Monitoring in the synthesized templates: the encrypted alarm topic, every alarm with its threshold setting,
the EventBridge rules with their patterns, the task notifier that carries seed results and init failures to
the topic, the dashboard; the settings and the constructs' props as one-line errors."""

from __future__ import annotations

import json
import subprocess

import aws_cdk as cdk
import pytest
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk.assertions import Template
from cdk_nag import AwsSolutionsChecks

from model_delivery import (AlarmThresholds, AlarmTopic, MetricsOptions, ModelDelivery, ModelDeliveryAlarms,
                            ModelDeliveryDashboard, ModelDeliveryError, ModelStore, ModelStoreAlarms, TaskNotifier)
from model_delivery.metrics import NOTIFIER_METRICS, DeliveryMetrics

from .helpers import Built, cdk_json_context, storage_value, containers, env, logical_id, only, resources, settings_for
from .test_cfn_lint import CFN_LINT, IGNORED
from .test_settings import error_for

TUNED = {"apps.demo.ingress": "internal", "alarm_email": "ops@example.com",
         "apps.demo.alarms.tasks_below_desired_minutes": "15", "apps.demo.alarms.pull_seconds": "120",
         "apps.demo.alarms.http_5xx_count": "25", "apps.demo.alarms.unhealthy_targets_minutes": "3"}
STAGE_ALARMS = "arn:aws:cloudwatch:eu-west-1:111111111111:alarm:ModelDelivery-dev-*"
TUNED_EFS = {"apps.demo.delivery_mode": "efs", "alarm_efs_io_limit_percent": "75",
             "alarm_efs_throughput_percent": "60"}


@pytest.fixture(scope="module")
def tuned() -> Built:
    return Built(TUNED)


@pytest.fixture(scope="module")
def tuned_efs() -> Built:
    return Built(TUNED_EFS)


@pytest.fixture(scope="module")
def two_apps() -> Built:
    return Built({"stage": "example"})


def alarms(built: Built) -> dict[str, dict]:
    """{alarm name without `ModelDelivery-<stage>-`: properties}: `demo-TasksBelowDesired`, `SeedRunnerErrors`."""
    return {r["Properties"]["AlarmName"].split("-", 2)[2]: r["Properties"]
            for r in resources(built.service, "AWS::CloudWatch::Alarm").values()}


def topic_ref(built: Built) -> dict:
    return {"Ref": logical_id(built.service, "AWS::SNS::Topic", "^AlarmsTopic")}


def key_id(built: Built) -> str:
    return logical_id(built.storage, "AWS::KMS::Key", "^Key")


def metric_stats(props: dict) -> dict[str, dict]:
    """{metric name: MetricStat} of a metric math alarm."""
    return {m["MetricStat"]["Metric"]["MetricName"]: m["MetricStat"] for m in props["Metrics"] if "MetricStat" in m}


def dimensions(props: dict) -> dict[str, object]:
    return {d["Name"]: d["Value"] for d in props["Dimensions"]}


def notifier(built: Built) -> dict:
    return resources(built.service, "AWS::Lambda::Function")[
        logical_id(built.service, "AWS::Lambda::Function", "^NotifierFunction")]["Properties"]


def rule(built: Built, pattern: str) -> dict:
    return resources(built.service, "AWS::Events::Rule")[
        logical_id(built.service, "AWS::Events::Rule", pattern)]["Properties"]


def family(built: Built, pattern: str) -> str:
    return resources(built.service, "AWS::ECS::TaskDefinition")[
        logical_id(built.service, "AWS::ECS::TaskDefinition", pattern)]["Properties"]["Family"]


# ---- the topic ---------------------------------------------------------------------------------------------------

def test_the_topic_is_encrypted_with_the_store_key_and_takes_tls_only(s3_built):
    topic = only(s3_built.service, "AWS::SNS::Topic")["Properties"]
    assert storage_value(s3_built, topic["KmsMasterKeyId"]) == {"Fn::GetAtt": [key_id(s3_built), "Arn"]}
    statements = only(s3_built.service, "AWS::SNS::TopicPolicy")["Properties"]["PolicyDocument"]["Statement"]
    deny, allow = statements
    assert deny["Effect"] == "Deny" and deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert allow == {
        "Sid": "CloudWatchAlarmsPublish", "Effect": "Allow", "Action": "sns:Publish",
        "Principal": {"Service": "cloudwatch.amazonaws.com"}, "Resource": topic_ref(s3_built),
        "Condition": {"StringEquals": {"aws:SourceAccount": "111111111111"},
                      "ArnLike": {"aws:SourceArn": STAGE_ALARMS}}}
    assert not resources(s3_built.service, "AWS::SNS::Subscription")  # no alarm_email: no subscription


def test_the_key_lets_cloudwatch_alarms_of_this_stage_use_it_and_grants_eventbridge_nothing(s3_built):
    statements = resources(s3_built.storage, "AWS::KMS::Key")[key_id(s3_built)]["Properties"]["KeyPolicy"]["Statement"]
    [cloudwatch] = [s for s in statements if s.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}]
    assert cloudwatch["Action"] == ["kms:Decrypt", "kms:GenerateDataKey*"] and cloudwatch["Resource"] == "*"
    assert cloudwatch["Condition"] == {
        "StringEquals": {"aws:SourceAccount": "111111111111"},
        "ArnLike": {"aws:SourceArn": STAGE_ALARMS}}
    assert "events.amazonaws.com" not in json.dumps(statements)


def test_alarm_email_subscribes_the_address(tuned):
    subscription = only(tuned.service, "AWS::SNS::Subscription")["Properties"]
    assert subscription["Protocol"] == "email" and subscription["Endpoint"] == "ops@example.com"
    assert subscription["TopicArn"] == topic_ref(tuned)


# ---- the alarms --------------------------------------------------------------------------------------------------

def test_each_configuration_has_its_alarms_and_every_alarm_notifies_the_topic(s3_built, efs_built, tuned, two_apps):
    shared = {"SeedRunnerErrors", "TaskNotifierErrors"}
    app = {"TasksBelowDesired", "InitContainerFailed"}
    assert set(alarms(s3_built)) == shared | {f"demo-{n}" for n in app | {"ModelPullSlow"}}
    assert set(alarms(efs_built)) == shared | {"EfsIoLimit", "EfsThroughputLimit"} | {f"demo-{n}" for n in app}
    assert set(alarms(tuned)) == shared | {f"demo-{n}" for n in app | {"ModelPullSlow", "LoadBalancer5xx",
                                                                      "UnhealthyTargets"}}
    with_lb = app | {"LoadBalancer5xx", "UnhealthyTargets"}
    assert set(alarms(two_apps)) == shared | {"EfsIoLimit", "EfsThroughputLimit"} | {
        f"maskterial-{n}" for n in with_lb | {"ModelPullSlow"}} | {f"ocr-{n}" for n in with_lb}
    for built in (s3_built, efs_built, tuned, two_apps):
        for name, props in alarms(built).items():
            assert props["AlarmActions"] == [topic_ref(built)] == props["OKActions"], name
            assert props["TreatMissingData"] == "notBreaching", name
            assert f"docs/runbook.md#alarms ({name.split('-')[-1]})" in props["AlarmDescription"], name


def test_tasks_below_desired_compares_container_insights_counts_for_the_set_minutes(s3_built, tuned):
    for built, minutes in ((s3_built, 10), (tuned, 15)):
        props = alarms(built)["demo-TasksBelowDesired"]
        [expression] = [m for m in props["Metrics"] if "Expression" in m]
        assert expression["Expression"] == "FILL(desired, 0) - FILL(running, 0)"
        stats = metric_stats(props)
        assert set(stats) == {"DesiredTaskCount", "RunningTaskCount"}
        for stat in stats.values():
            assert stat["Metric"]["Namespace"] == "ECS/ContainerInsights" and stat["Period"] == 60
            assert {d["Name"]: d["Value"] for d in stat["Metric"]["Dimensions"]} == {
                "ClusterName": {"Ref": logical_id(built.service, "AWS::ECS::Cluster", "^Cluster")},
                "ServiceName": {"Fn::GetAtt": [logical_id(built.service, "AWS::ECS::Service", "^DemoService"),
                                               "Name"]}}
        assert (props["Threshold"], props["EvaluationPeriods"], props["DatapointsToAlarm"]) == (1, minutes, minutes)
        assert props["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"


def test_init_failures_and_pull_time_read_each_apps_own_metrics(s3_built, tuned, two_apps):
    init = alarms(s3_built)["demo-InitContainerFailed"]
    assert (init["Namespace"], init["MetricName"], init["Statistic"], init["Period"]) == (
        "ModelDelivery", "InitFailures", "Sum", 300)
    assert dimensions(init) == {"Stage": "dev", "App": "demo"} and init["Threshold"] == 1
    for built, seconds in ((s3_built, 300), (tuned, 120)):
        pull = alarms(built)["demo-ModelPullSlow"]
        assert (pull["Namespace"], pull["MetricName"], pull["Statistic"]) == ("ModelDelivery", "PullSeconds", "Maximum")
        assert dimensions(pull) == {"Stage": "dev", "App": "demo", "DeliveryMode": "s3"}
        assert (pull["Threshold"], pull["ComparisonOperator"]) == (seconds, "GreaterThanThreshold")
    # Two apps of one stage never share a metric: each alarm reads its own app's figures.
    assert dimensions(alarms(two_apps)["maskterial-ModelPullSlow"]) == {
        "Stage": "example", "App": "maskterial", "DeliveryMode": "s3"}
    assert dimensions(alarms(two_apps)["ocr-InitContainerFailed"]) == {"Stage": "example", "App": "ocr"}


def test_lambda_error_alarms_watch_the_seed_runner_and_the_notifier(s3_built):
    functions = {name: {"Ref": logical_id(s3_built.service, "AWS::Lambda::Function", pattern)}
                 for name, pattern in (("SeedRunnerErrors", "^SeedRunnerFunction"),
                                       ("TaskNotifierErrors", "^NotifierFunction"))}
    for name, function in functions.items():
        props = alarms(s3_built)[name]
        assert (props["Namespace"], props["MetricName"], props["Statistic"]) == ("AWS/Lambda", "Errors", "Sum")
        assert props["Dimensions"] == [{"Name": "FunctionName", "Value": function}] and props["Threshold"] == 1


def test_efs_alarms_watch_the_mirror_with_their_settings(efs_built, tuned_efs):
    for built, io, throughput in ((efs_built, 90, 80), (tuned_efs, 75, 60)):
        file_system = storage_value(built, alarms(built)["EfsIoLimit"]["Dimensions"][0]["Value"])
        assert file_system == {"Ref": logical_id(built.storage, "AWS::EFS::FileSystem", "^MirrorFileSystem")}
        limit = alarms(built)["EfsIoLimit"]
        assert (limit["Namespace"], limit["MetricName"], limit["Statistic"]) == ("AWS/EFS", "PercentIOLimit", "Maximum")
        assert (limit["Threshold"], limit["EvaluationPeriods"], limit["Period"]) == (io, 5, 60)
        used = alarms(built)["EfsThroughputLimit"]
        [expression] = [m for m in used["Metrics"] if "Expression" in m]
        assert expression["Expression"] == "(metered / PERIOD(metered)) / permitted * 100"
        stats = metric_stats(used)
        assert (stats["MeteredIOBytes"]["Stat"], stats["PermittedThroughput"]["Stat"]) == ("Sum", "Average")
        assert (used["Threshold"], used["EvaluationPeriods"]) == (throughput, 5)


def test_load_balancer_alarms_count_5xx_and_unhealthy_targets(tuned):
    errors = alarms(tuned)["demo-LoadBalancer5xx"]
    assert set(metric_stats(errors)) == {"HTTPCode_Target_5XX_Count", "HTTPCode_ELB_5XX_Count"}
    assert (errors["Threshold"], errors["EvaluationPeriods"]) == (25, 1)
    unhealthy = alarms(tuned)["demo-UnhealthyTargets"]
    assert (unhealthy["MetricName"], unhealthy["Statistic"], unhealthy["Period"]) == ("UnHealthyHostCount", "Maximum",
                                                                                     60)
    assert (unhealthy["Threshold"], unhealthy["EvaluationPeriods"]) == (1, 3)


# ---- from ECS task events to the topic ----------------------------------------------------------------------------

def test_a_failed_init_container_reaches_the_topic_through_its_apps_rule_and_alarm(s3_built, efs_built, two_apps):
    cases = [(s3_built, "dev", "demo", "Demo", "model-pull"), (efs_built, "dev", "demo", "Demo", "model-verify"),
             (two_apps, "example", "maskterial", "Maskterial", "model-pull"),
             (two_apps, "example", "ocr", "Ocr", "model-verify")]
    for built, stage, app, app_id, init in cases:
        found = rule(built, f"^{app_id}AlarmsInitFailed")
        cluster = {"Fn::GetAtt": [logical_id(built.service, "AWS::ECS::Cluster", "^Cluster"), "Arn"]}
        service_family = family(built, f"^{app_id}TaskDefinition")
        assert found["EventPattern"] == {
            "source": ["aws.ecs"], "detail-type": ["ECS Task State Change"],
            "detail": {"clusterArn": [cluster], "lastStatus": ["STOPPED"],
                       "taskDefinitionArn": [{"prefix": f"arn:aws:ecs:eu-west-1:{built.delivery.service.account}:"
                                                        f"task-definition/{service_family}:"}],
                       "$or": [{"containers": {"name": [init], "exitCode": [{"anything-but": 0}]}},
                               {"stopCode": ["TaskFailedToStart"]}]}}
        function = {"Fn::GetAtt": [logical_id(built.service, "AWS::Lambda::Function", "^NotifierFunction"), "Arn"]}
        [target] = found["Targets"]
        assert target["Arn"] == function
        # The rule hands the event on as it came (EventBridge's <aws.events.event.json>) with the app it watches.
        template = target["InputTransformer"]["InputTemplate"]
        watch = json.loads(template.replace("<aws.events.event.json>", "null"))
        assert watch == {"watch": {"app": app, "family": service_family, "init_container": init}, "event": None}
        assert set(target["InputTransformer"]) == {"InputTemplate"}
        variables = notifier(built)["Environment"]["Variables"]
        assert (variables["STAGE"], variables["METRICS_NAMESPACE"]) == (stage, "ModelDelivery")
        # The notifier writes InitFailures with exactly the alarm's namespace and dimensions; the alarm pages.
        alarm = alarms(built)[f"{app}-InitContainerFailed"]
        assert (alarm["Namespace"], alarm["MetricName"]) == (variables["METRICS_NAMESPACE"], "InitFailures")
        assert dimensions(alarm) == {"Stage": variables["STAGE"], "App": app}
        assert alarm["AlarmActions"] == [topic_ref(built)]
    # Adding an app adds a rule and leaves the function as it is: it learns the app from the rule.
    assert "maskterial" not in json.dumps(notifier(two_apps)) and "demo" not in json.dumps(notifier(s3_built))


def test_failed_seeds_and_signings_reach_the_topic_through_their_rule_and_the_notifier(s3_built):
    pattern = rule(s3_built, "^NotifierSeedStopped")["EventPattern"]
    seed_family = family(s3_built, "^SeedingTaskDefinition")
    sign_family = family(s3_built, "^SigningTaskDefinition")
    prefix = "arn:aws:ecs:eu-west-1:111111111111:task-definition/"
    assert pattern["detail"] == {
        "clusterArn": [{"Fn::GetAtt": [logical_id(s3_built.service, "AWS::ECS::Cluster", "^Cluster"), "Arn"]}],
        "lastStatus": ["STOPPED"],
        "taskDefinitionArn": [{"prefix": f"{prefix}{seed_family}:"}, {"prefix": f"{prefix}{sign_family}:"}]}
    assert (pattern["source"], pattern["detail-type"]) == (["aws.ecs"], ["ECS Task State Change"])
    variables = notifier(s3_built)["Environment"]["Variables"]
    assert set(variables) == {"TOPIC_ARN", "STAGE", "METRICS_NAMESPACE"} | {
        f"{job}_{name}" for job in ("SEED", "SIGN")
        for name in ("TASK_FAMILY", "CONTAINER_NAME", "LOG_GROUP_NAME", "LOG_STREAM_PREFIX")}
    assert variables["TOPIC_ARN"] == topic_ref(s3_built)
    assert (variables["SEED_TASK_FAMILY"], variables["SIGN_TASK_FAMILY"]) == (seed_family, sign_family)
    assert (variables["SEED_CONTAINER_NAME"], variables["SEED_LOG_STREAM_PREFIX"]) == ("seed", "seed")
    assert (variables["SIGN_CONTAINER_NAME"], variables["SIGN_LOG_STREAM_PREFIX"]) == ("sign", "sign")
    assert variables["SEED_LOG_GROUP_NAME"] == {"Ref": logical_id(s3_built.service, "AWS::Logs::LogGroup",
                                                                  "^SeedingLogs")}
    assert variables["SIGN_LOG_GROUP_NAME"] == {"Ref": logical_id(s3_built.service, "AWS::Logs::LogGroup",
                                                                  "^SigningLogs")}
    # Its role may publish to the topic and use the key for that only through SNS; the raw event goes to the
    # topic when the function fails after its retries.
    role = logical_id(s3_built.service, "AWS::IAM::Role", "^NotifierRole")
    statements = {s["Sid"]: s for p in resources(s3_built.service, "AWS::IAM::Policy").values()
                  if p["Properties"]["Roles"] == [{"Ref": role}] for s in p["Properties"]["PolicyDocument"]["Statement"]}
    assert statements["PublishToAlarmTopic"]["Action"] == "sns:Publish"
    assert statements["PublishToAlarmTopic"]["Resource"] == topic_ref(s3_built)
    encrypt = statements["EncryptForAlarmTopic"]
    assert sorted(encrypt["Action"]) == ["kms:Decrypt", "kms:GenerateDataKey"]
    assert storage_value(s3_built, encrypt["Resource"]) == {"Fn::GetAtt": [key_id(s3_built), "Arn"]}
    assert encrypt["Condition"] == {"StringEquals": {"kms:ViaService": "sns.eu-west-1.amazonaws.com"}}
    read = statements["ReadSeedingTaskLogs"]
    assert read["Action"] == "logs:GetLogEvents" and "log-stream:seed/seed/*" in json.dumps(read["Resource"])
    read = statements["ReadSigningTaskLogs"]
    assert read["Action"] == "logs:GetLogEvents" and "log-stream:sign/sign/*" in json.dumps(read["Resource"])
    invoke = only(s3_built.service, "AWS::Lambda::EventInvokeConfig")["Properties"]
    assert invoke["DestinationConfig"] == {"OnFailure": {"Destination": topic_ref(s3_built)}}
    assert (invoke["MaximumRetryAttempts"], invoke["Qualifier"]) == (2, "$LATEST")


def test_the_containers_write_their_metrics_with_stage_app_and_mode(s3_built, efs_built, two_apps):
    cases = [(s3_built, "Demo", "model-pull", "dev", "demo", "s3"), (efs_built, "Demo", "model-verify", "dev", "demo",
             "efs"), (two_apps, "Ocr", "model-verify", "example", "ocr", "efs")]
    for built, app_id, init, stage, app, mode in cases:
        init_env = env(containers(built.service, f"^{app_id}TaskDefinition")[init])
        assert (init_env["MODELSYNC_METRICS_NAMESPACE"], init_env["MODELSYNC_STAGE"], init_env["MODELSYNC_APP"],
                init_env["MODELSYNC_DELIVERY_MODE"]) == ("ModelDelivery", stage, app, mode)
        seed_env = env(containers(built.service, "^SeedingTaskDefinition")["seed"])
        assert (seed_env["MODELSYNC_METRICS_NAMESPACE"], seed_env["MODELSYNC_STAGE"]) == ("ModelDelivery", stage)
        assert "MODELSYNC_DELIVERY_MODE" not in seed_env and "MODELSYNC_APP" not in seed_env
        assert "MODELSYNC_METRICS_NAMESPACE" not in env(containers(built.service, f"^{app_id}TaskDefinition")["app"])


# ---- the dashboard -----------------------------------------------------------------------------------------------

def dashboard_text(built: Built) -> str:
    body = only(built.service, "AWS::CloudWatch::Dashboard")["Properties"]["DashboardBody"]["Fn::Join"][1]
    return "".join(part if isinstance(part, str) else json.dumps(part) for part in body)


def test_the_dashboard_shows_delivery_tasks_failures_seeds_efs_and_the_load_balancer(s3_built, efs_built, tuned):
    assert only(s3_built.service, "AWS::CloudWatch::Dashboard")["Properties"]["DashboardName"] == "ModelDelivery-dev"
    common = ["Tasks", "RunningTaskCount", "DesiredTaskCount", "Init failures", "InitFailures", "SeedPublished",
              "SeedFailed", "SeedTaskFailed", "MirrorBytes", "App demo"]
    checks = ((s3_built, ["Model pull time per task start (s)", "PullSeconds", "PullBytes", "PullRetries"],
               ["PercentIOLimit", "RequestCount"]),
              (efs_built, ["VerifyFailures", "ViewSeconds", "EFS mirror throughput (MiB/s)", "TotalIOBytes",
                           "PercentIOLimit", "MeteredIOBytes"], ["PullSeconds", "RequestCount"]),
              (tuned, ["PullSeconds", "Load balancer requests", "RequestCount", "TargetResponseTime", "p99"],
               ["PercentIOLimit"]))
    for built, present, absent in checks:
        text = dashboard_text(built)
        for fragment in common + present:
            assert fragment in text, fragment
        for fragment in absent:
            assert fragment not in text, fragment
        for alarm in resources(built.service, "AWS::CloudWatch::Alarm"):  # every alarm in the status widget
            assert alarm in text


def test_the_dashboard_has_a_row_per_app(two_apps):
    text = dashboard_text(two_apps)
    assert "## App maskterial (s3 mode: " in text and "## App ocr (efs mode: " in text
    assert text.index("App maskterial") < text.index("App ocr") < text.index("Shared by the apps")
    # Each app's graphs read its own figures.
    assert '["ModelDelivery","PullSeconds","App","maskterial","DeliveryMode","s3","Stage","example"' in text
    assert '["ModelDelivery","VerifyFailures","App","ocr","DeliveryMode","efs","Stage","example"' in text


def test_operators_get_the_topic_and_the_dashboard_as_outputs(s3_built):
    outputs = s3_built.service.find_outputs("*")
    assert outputs["AlarmTopicArn"]["Value"] == topic_ref(s3_built)
    assert outputs["DashboardName"]["Value"] == {"Ref": logical_id(s3_built.service, "AWS::CloudWatch::Dashboard",
                                                                   "^Dashboard")}


def test_templates_with_load_balancer_alarms_pass_cfn_lint(tuned, two_apps, tmp_path):
    paths = []
    for name, built in (("tuned", tuned), ("two-apps", two_apps)):
        for stack, template in built.templates().items():
            path = tmp_path / f"{name}-{stack}.template.json"
            path.write_text(json.dumps(template))
            paths.append(str(path))
    result = subprocess.run([CFN_LINT, "--format", "parseable", "--ignore-checks", *IGNORED, "--", *paths],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and result.stdout.strip() == "", result.stdout + result.stderr


# ---- settings and props ------------------------------------------------------------------------------------------

def test_threshold_settings_default_to_the_constructs_defaults():
    assert settings_for({}).apps["demo"].alarms.thresholds == AlarmThresholds()
    assert settings_for({"apps.demo.alarms.pull_seconds": "60"}).apps["demo"].alarms.thresholds.pull_seconds == 60


@pytest.mark.parametrize("overrides, names", [
    ({"alarm_email": "ops at example"}, ["'alarm_email'", "'ops at example'", "ops@example.com"]),
    ({"apps.demo.alarms.tasks_below_desired_minutes": "0"}, ["'apps.demo.alarms.tasks_below_desired_minutes'", "0",
                                                             "1 to 1440"]),
    ({"apps.demo.alarms.pull_seconds": "soon"}, ["'apps.demo.alarms.pull_seconds'", "'soon'", "whole number"]),
    ({"alarm_efs_io_limit_percent": "101"}, ["'alarm_efs_io_limit_percent'", "101", "1 to 100"]),
    ({"alarm_efs_throughput_percent": "0"}, ["'alarm_efs_throughput_percent'", "0", "permitted EFS throughput"]),
    ({"apps.demo.alarms.http_5xx_count": "-1"}, ["'apps.demo.alarms.http_5xx_count'", "-1", "1 to 1000000"]),
    ({"apps.demo.alarms.unhealthy_targets_minutes": "2000"}, ["'apps.demo.alarms.unhealthy_targets_minutes'",
                                                              "2000", "1 to 1440"]),
])
def test_bad_alarm_settings_are_one_line_errors(overrides, names):
    message = error_for(overrides)  # one line, or it fails
    for name in names:
        assert name in message, message


def bare_delivery(metrics: MetricsOptions | None = MetricsOptions(stage="team", app="flake")):
    app = cdk.App(context={k: v for k, v in cdk_json_context().items() if k.startswith("@aws-cdk")})
    scope = cdk.Stack(app, "S", env=cdk.Environment(account="111111111111", region="eu-west-1"))
    vpc = ec2.Vpc(scope, "Vpc")
    cluster = ecs.Cluster(scope, "Cluster", vpc=vpc)
    task = ecs.FargateTaskDefinition(scope, "Task", cpu=1024, memory_limit_mib=4096)
    app_container = task.add_container("app", image=ecs.ContainerImage.from_registry("example/app:1"))
    store = ModelStore(scope, "Store")
    delivery = ModelDelivery(scope, "Delivery", task_definition=task, app_container=app_container, store=store,
                             image=ecs.ContainerImage.from_registry("example/modelsync:0.2.0"), models=["a"],
                             metrics=metrics)
    service = ecs.FargateService(scope, "Service", cluster=cluster, task_definition=task)
    topic = AlarmTopic(scope, "Topic", store=store, stage="team")
    notifier = TaskNotifier(scope, "Notifier", cluster=cluster, topic=topic, encryption=store.log_encryption,
                            metrics=MetricsOptions(stage="team"))
    return scope, store, service, delivery, cluster, topic, notifier


@pytest.mark.parametrize("construct, props, fragment", [
    ("topic", {"stage": "dev stage"}, "AlarmTopic stage = 'dev stage' is not allowed: use 1-200 letters"),
    ("topic", {"name_prefix": "a/b"}, "AlarmTopic name_prefix = 'a/b' is not allowed"),
    ("topic", {"email": "nobody"}, "AlarmTopic email = 'nobody' is not allowed"),
    ("metrics", {"namespace": "AWS/ECS"}, "MetricsOptions namespace = 'AWS/ECS' is not allowed"),
    ("metrics", {"app": "my app"}, "MetricsOptions app = 'my app' is not allowed"),
    ("alarms", {"thresholds": {"pull_seconds": 5}}, "ModelDeliveryAlarms thresholds is not an AlarmThresholds"),
])
def test_monitoring_props_are_checked_with_one_line_errors(construct, props, fragment):
    scope, store, service, delivery, _, topic, notifier = bare_delivery()
    with pytest.raises(ModelDeliveryError) as caught:
        if construct == "topic":
            AlarmTopic(scope, "Other", store=store, **{"stage": "dev", **props})
        elif construct == "metrics":
            MetricsOptions(**{"stage": "dev", **props})
        else:
            ModelDeliveryAlarms(scope, "Alarms", topic=topic, notifier=notifier, service=service, delivery=delivery,
                                **props)
    assert fragment in str(caught.value) and "\n" not in str(caught.value)


def test_thresholds_a_delivery_of_another_task_missing_metrics_and_the_dashboard_are_checked():
    with pytest.raises(ModelDeliveryError, match=r"^AlarmThresholds pull_seconds = 0 is not allowed: use a whole "
                                                 r"number from 1 to 86400"):
        AlarmThresholds(pull_seconds=0)
    scope, store, _, delivery, cluster, topic, notifier = bare_delivery()
    other = ecs.FargateTaskDefinition(scope, "Other", cpu=256, memory_limit_mib=512)
    other.add_container("x", image=ecs.ContainerImage.from_registry("example/x:1"))
    service = ecs.FargateService(scope, "OtherService", cluster=cluster, task_definition=other)
    with pytest.raises(ModelDeliveryError, match="delivery belongs to another task definition than service"):
        ModelDeliveryAlarms(scope, "Alarms", topic=topic, notifier=notifier, service=service, delivery=delivery)
    with pytest.raises(ModelDeliveryError, match="ModelDeliveryDashboard takes the stage's ModelStoreAlarms"):
        ModelDeliveryDashboard(scope, "Dashboard", store_alarms=None, app_alarms=[])  # type: ignore[arg-type]
    scope, _, service, delivery, _, topic, notifier = bare_delivery(metrics=None)
    with pytest.raises(ModelDeliveryError, match="ModelDeliveryAlarms needs the delivery's metrics: create the "
                                                 "ModelDelivery with metrics=MetricsOptions"):
        ModelDeliveryAlarms(scope, "Alarms", topic=topic, notifier=notifier, service=service, delivery=delivery)


def test_a_library_user_gets_alarms_without_seeding_or_a_load_balancer():
    scope, store, service, delivery, _, topic, notifier = bare_delivery()
    monitoring = ModelDeliveryAlarms(scope, "Alarms", topic=topic, notifier=notifier, service=service,
                                     delivery=delivery)
    shared = ModelStoreAlarms(scope, "Shared", topic=topic, store=store, notifier=notifier,
                              metrics=MetricsOptions(stage="team"))
    ModelDeliveryDashboard(scope, "Dashboard", store_alarms=shared, app_alarms=[monitoring])
    assert set(monitoring.alarms) == {"TasksBelowDesired", "InitContainerFailed", "ModelPullSlow"}
    assert set(shared.alarms) == {"TaskNotifierErrors"}
    assert notifier.seed_rule is None
    template = Template.from_stack(scope)
    names = {a["Properties"]["AlarmName"] for a in template.find_resources("AWS::CloudWatch::Alarm").values()}
    assert names == {"ModelDelivery-team-flake-TasksBelowDesired", "ModelDelivery-team-flake-InitContainerFailed",
                     "ModelDelivery-team-flake-ModelPullSlow", "ModelDelivery-team-TaskNotifierErrors"}
    [function] = [f["Properties"] for f in template.find_resources("AWS::Lambda::Function").values()
                  if "TOPIC_ARN" in f["Properties"].get("Environment", {}).get("Variables", {})]
    assert set(function["Environment"]["Variables"]) == {"TOPIC_ARN", "STAGE", "METRICS_NAMESPACE"}
    assert len(template.find_resources("AWS::Events::Rule")) == 1
    for construct in (monitoring, shared, notifier, topic):
        report = AwsSolutionsChecks().validate_scope(construct)  # nag-clean in someone else's stack too
        assert report.success, [v.rule_name for v in report.violations]


def test_metrics_the_constructs_read_are_metrics_something_writes():
    scope, _, service, delivery, _, topic, notifier = bare_delivery()
    metrics = ModelDeliveryAlarms(scope, "Alarms", topic=topic, notifier=notifier, service=service,
                                  delivery=delivery).metrics
    assert isinstance(metrics, DeliveryMetrics) and "InitFailures" in NOTIFIER_METRICS
    with pytest.raises(ModelDeliveryError, match="no model delivery metric is called 'PullSecs'"):
        metrics.delivery("PullSecs")
