"""TaskNotifier: the Lambda (lambdas/task_notifier) that turns "ECS Task State Change" (STOPPED) events of the
seeding task and of each app's service tasks into what an operator gets: every seed's outcome on the alarm
topic (exit code, stopped reason, the summary line from the task's log) and the InitFailures metric (by Stage
and App) each app's InitContainerFailed alarm watches. Its own failures are not lost: after Lambda's retries the
event itself goes to the topic (the function's on-failure destination), and its Errors metric has an alarm.

One notifier per stage; `watch(scope, delivery, app)` adds one app's rule in that app's scope. The rule passes
the app's name, family and init container to the function beside the event, so adding an app adds a rule and
changes nothing in the function.

Patterns (EventBridge documents array matching as "any element matches"; it does not say that the name and
the exit code must come from one element of `containers`, so the Lambda checks the init container itself):
  init:  detail.clusterArn = the cluster, lastStatus STOPPED, taskDefinitionArn prefix the app's family,
         and either containers {name = init container, exitCode anything-but 0} or stopCode TaskFailedToStart
  seed:  detail.clusterArn = the cluster, lastStatus STOPPED, taskDefinitionArn prefix the seeding family
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from constructs import Construct

from model_delivery.alarm_topic import AlarmTopic
from model_delivery.code import lambda_code_dir
from model_delivery.delivery import ModelDelivery
from model_delivery.functions import hardened_function
from model_delivery.logs import LogEncryption
from model_delivery.metrics import MetricsOptions
from model_delivery.nag import acknowledge_wildcard_resource
from model_delivery.seeding import SEED_CONTAINER, SEED_STREAM_PREFIX, ModelSeeding, SeedingTask
from model_delivery.signing_task import SIGN_CONTAINER, SIGN_STREAM_PREFIX, SigningTask
from model_delivery.tasks import family_arn_prefix

TASK_NOTIFIER_DIR = lambda_code_dir("task_notifier")
TASK_STATE_CHANGE = {"source": ["aws.ecs"], "detail_type": ["ECS Task State Change"]}
ASYNC_RETRIES = 2  # Lambda's own retries of an event that failed, before it goes to the on-failure destination
MAX_EVENT_AGE_SECONDS = 6 * 3600
# With a reservation: task state changes come in bursts (a failed rollout stops many tasks), a few at once, the
# rest wait in Lambda's async queue (up to MAX_EVENT_AGE_SECONDS), so a burst cannot take the account's concurrency.
NOTIFIER_CONCURRENCY = 5


class TaskNotifier(Construct):
    """Seed results to the alarm topic, and each app's init failures as a metric.

    Props: cluster (where the tasks run), topic (the stage's AlarmTopic), encryption (the store's
    log_encryption: its key encrypts the topic and the function's logs), metrics (MetricsOptions: namespace and
    stage of the records it writes), seeding (ModelSeeding: the results of its seeding and signing tasks go to the
    topic; or None), log_retention_days, reserved_concurrency (None by default: fresh accounts cannot reserve any;
    or e.g. NOTIFIER_CONCURRENCY).
    Attributes: function, log_group, dead_letter_queue, seed_rule (or None); watch() adds an app's rule."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        cluster: ecs.ICluster,
        topic: AlarmTopic,
        encryption: LogEncryption,
        metrics: MetricsOptions,
        seeding: ModelSeeding | None = None,
        log_retention_days: int = 30,
        reserved_concurrency: int | None = None,
    ) -> None:
        super().__init__(scope, id)
        self.cluster = cluster
        key = encryption.key
        sns_topic: sns.ITopic = topic.topic
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="Task notifier: publish seed and sign results, read those tasks' logs",
        )
        self.role.add_to_policy(
            iam.PolicyStatement(sid="PublishToAlarmTopic", actions=["sns:Publish"], resources=[sns_topic.topic_arn])
        )
        # The topic is encrypted: a publisher needs the key for the data key SNS makes (SNS developer guide).
        region = cdk.Stack.of(self).region
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="EncryptForAlarmTopic",
                actions=["kms:GenerateDataKey", "kms:Decrypt"],
                resources=[key.key_arn],
                conditions={"StringEquals": {"kms:ViaService": f"sns.{region}.amazonaws.com"}},
            )
        )
        environment = {
            "TOPIC_ARN": sns_topic.topic_arn,
            "STAGE": metrics.stage,
            "METRICS_NAMESPACE": metrics.namespace,
        }
        one_shot: list[tuple[str, str, SeedingTask | SigningTask, str, str]] = (
            []
            if seeding is None
            else [
                ("SEED", "Seeding", seeding.task, SEED_CONTAINER, SEED_STREAM_PREFIX),
                ("SIGN", "Signing", seeding.signing, SIGN_CONTAINER, SIGN_STREAM_PREFIX),
            ]
        )
        for variable, label, task, container, prefix in one_shot:
            logs_name = task.log_group.log_group_name
            streams = cdk.Stack.of(self).format_arn(
                service="logs",
                resource="log-group",
                arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
                resource_name=f"{logs_name}:log-stream:{prefix}/{container}/*",
            )
            self.role.add_to_policy(
                iam.PolicyStatement(sid=f"Read{label}TaskLogs", actions=["logs:GetLogEvents"], resources=[streams])
            )
            acknowledge_wildcard_resource(
                self.role,
                streams,
                f"Each {label.lower()} task writes its own stream, named after its task id, which ECS assigns at run "
                "time; scoped to that container's streams of its log group.",
            )
            environment.update(
                {
                    f"{variable}_TASK_FAMILY": task.task_definition.family,
                    f"{variable}_CONTAINER_NAME": container,
                    f"{variable}_LOG_GROUP_NAME": logs_name,
                    f"{variable}_LOG_STREAM_PREFIX": prefix,
                }
            )
        hardened = hardened_function(
            self,
            code_dir=TASK_NOTIFIER_DIR,
            role=self.role,
            encryption=encryption,
            reserved_concurrency=reserved_concurrency,
            log_retention_days=log_retention_days,
            where="TaskNotifier",
            # About 30 s of reads while the seed's last lines arrive (lambdas/task_notifier: LOG_ATTEMPTS).
            timeout=cdk.Duration.seconds(90),
            memory_size=256,
            description="Publishes seed results and counts init container failures (ECS task state changes)",
            environment=environment,
        )
        self.function, self.log_group, self.dead_letter_queue = (
            hardened.function,
            hardened.log_group,
            hardened.dead_letter_queue,
        )
        # After its retries, an event the function could not handle goes to the topic as it is (and to the
        # dead-letter queue: Lambda sends to both when both are set).
        lambda_.CfnEventInvokeConfig(
            self,
            "AsyncInvoke",
            function_name=self.function.function_name,
            qualifier="$LATEST",
            maximum_retry_attempts=ASYNC_RETRIES,
            maximum_event_age_in_seconds=MAX_EVENT_AGE_SECONDS,
            destination_config=lambda_.CfnEventInvokeConfig.DestinationConfigProperty(
                on_failure=lambda_.CfnEventInvokeConfig.OnFailureProperty(destination=sns_topic.topic_arn)
            ),
        )
        self.seed_rule = (
            None
            if not one_shot
            else events.Rule(
                self,
                "SeedStopped",
                description="Model delivery: a seeding or signing task stopped (its result goes to the topic)",
                event_pattern=events.EventPattern(
                    **TASK_STATE_CHANGE,
                    detail={
                        **self._stopped(),
                        "taskDefinitionArn": [
                            {"prefix": family_arn_prefix(self, task.task_definition)} for _, _, task, _, _ in one_shot
                        ],
                    },
                ),
                targets=[targets.LambdaFunction(self.function)],
            )
        )

    def _stopped(self) -> dict:
        return {"clusterArn": [self.cluster.cluster_arn], "lastStatus": ["STOPPED"]}

    def watch(self, scope: Construct, delivery: ModelDelivery, app: str | None) -> events.Rule:
        """A rule, in `scope`, that sends the stopped tasks of `delivery`'s task definition whose init container
        failed (or that failed to start) to the function, with the app's name for the InitFailures metric."""
        task_definition = delivery.init.task_definition
        init = delivery.init.container_name
        rule = events.Rule(
            scope,
            "InitFailed",
            description=f"Model delivery: a task of {app or 'the service'} stopped after its init container "
            "failed, or before it could run",
            event_pattern=events.EventPattern(
                **TASK_STATE_CHANGE,
                detail={
                    **self._stopped(),
                    "taskDefinitionArn": [{"prefix": family_arn_prefix(scope, task_definition)}],
                    "$or": [
                        {"containers": {"name": [init], "exitCode": [{"anything-but": 0}]}},
                        {"stopCode": ["TaskFailedToStart"]},
                    ],
                },
            ),
            targets=[targets.LambdaFunction(self.function)],
        )
        # The event as it came (EventBridge's predefined <aws.events.event.json>, documented in "Amazon
        # EventBridge input transformation") beside which app it belongs to.
        watch = cdk.Stack.of(scope).to_json_string(
            {"app": app or "", "family": task_definition.family, "init_container": init}
        )
        cfn_rule = rule.node.default_child
        assert isinstance(cfn_rule, events.CfnRule)
        cfn_rule.add_property_override(
            "Targets.0.InputTransformer",
            {"InputTemplate": cdk.Fn.join("", ['{"watch":', watch, ',"event":<aws.events.event.json>}'])},
        )
        return rule
