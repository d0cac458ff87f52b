"""ModelDeliveryAlarms: alarms that page when model delivery breaks, on an SNS topic encrypted with the store's
key, and the seed results delivered to the same topic (TaskNotifier).

Alarms (name `<name_prefix>-<Alarm>`; thresholds: AlarmThresholds; what to do: docs/runbook.md, "Alarms"):
  TasksBelowDesired     ECS/ContainerInsights DesiredTaskCount - RunningTaskCount >= 1 for N minutes
  InitContainerFailed   InitFailures (the task notifier's metric) >= 1 in 5 minutes
  ModelPullSlow         PullSeconds (the init container's EMF) maximum above the threshold (s3 mode)
  SeedRunnerErrors      the seed runner Lambda's Errors >= 1 (seed_on_deploy invokes it asynchronously)
  TaskNotifierErrors    the task notifier's Errors >= 1 (a seed result may not have been delivered)
  EfsIoLimit            AWS/EFS PercentIOLimit at or above the threshold for 5 minutes (efs mode)
  EfsThroughputLimit    MeteredIOBytes per second as a percentage of PermittedThroughput, likewise (efs mode)
  LoadBalancer5xx       target and load balancer 5xx responses in 5 minutes (with a load balancer)
  UnhealthyTargets      UnHealthyHostCount >= 1 for N minutes (with a load balancer)
Every alarm notifies the topic when it goes to ALARM and when it is OK again.

The topic is encrypted with the store's key. CloudWatch alarms publish as cloudwatch.amazonaws.com, so the
key policy lets that principal use the key and the topic policy lets it publish, both only for this
account's alarms named `<name_prefix>-*` (aws:SourceAccount, aws:SourceArn: SNS developer guide, "Enable
compatibility between event sources from AWS services and encrypted topics"). Nothing publishes through
EventBridge directly (the task notifier publishes with its own role), so the key needs no grant for
events.amazonaws.com, the one case where SNS does not support those source conditions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from model_delivery.delivery import ModelDelivery
from model_delivery.errors import ModelDeliveryError
from model_delivery.notifier import TaskNotifier
from model_delivery.seeding import ModelSeeding
from model_delivery.store import ModelStore
from modelsync import metrics as emf

DEFAULT_NAMESPACE = emf.DEFAULT_NAMESPACE
NOTIFIER_METRICS = ("InitFailures", "SeedTasks", "SeedTaskFailed")  # written by lambdas/task_notifier
NAME_PREFIX = re.compile(r"[A-Za-z0-9_-]{1,200}")  # also the dashboard's name: letters, digits, - and _
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
FIVE_MINUTES = cdk.Duration.minutes(5)
ONE_MINUTE = cdk.Duration.minutes(1)
RUNBOOK = "docs/runbook.md#alarms"

# threshold field -> (lowest, highest, what it is): the settings (alarm_<field>) check the same ranges.
THRESHOLDS = {
    "tasks_below_desired_minutes": (1, 1440, "minutes the service may run fewer tasks than desired"),
    "pull_seconds": (1, 86400, "seconds a task start's model pull may take"),
    "efs_io_limit_percent": (1, 100, "percent of the EFS I/O limit (PercentIOLimit) for 5 minutes"),
    "efs_throughput_percent": (1, 100, "percent of the permitted EFS throughput for 5 minutes"),
    "http_5xx_count": (1, 1_000_000, "5xx responses from the targets and the load balancer in 5 minutes"),
    "unhealthy_targets_minutes": (1, 1440, "minutes a target may stay unhealthy"),
}


@dataclass(frozen=True)
class AlarmThresholds:
    """When the alarms fire (defaults: the app's settings defaults)."""

    tasks_below_desired_minutes: int = 10
    pull_seconds: int = 300
    efs_io_limit_percent: int = 90
    efs_throughput_percent: int = 80
    http_5xx_count: int = 10
    unhealthy_targets_minutes: int = 5

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            low, high, what = THRESHOLDS[field.name]
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                raise ModelDeliveryError(
                    f"AlarmThresholds {field.name} = {value!r} is not allowed: use a whole "
                    f"number from {low} to {high} ({what})"
                )


@dataclass(frozen=True)
class LoadBalancing:
    """The service's load balancer and its target group (for the 5xx and unhealthy-target alarms)."""

    load_balancer: elbv2.IApplicationLoadBalancer
    target_group: elbv2.IApplicationTargetGroup


class DeliveryMetrics:
    """The metrics of one model delivery, as the alarms and the dashboard read them."""

    def __init__(
        self,
        *,
        namespace: str,
        stage: str,
        mode: str,
        service: ecs.FargateService,
        seeding: ModelSeeding | None,
        file_system_id: str | None,
        notifier_function,
    ) -> None:
        self.namespace, self.stage, self.mode = namespace, stage, mode
        self.service, self.seeding, self.file_system_id = service, seeding, file_system_id
        self.notifier_function = notifier_function

    def delivery(self, name: str, statistic: str = "Sum", period: cdk.Duration = FIVE_MINUTES) -> cw.Metric:
        """A metric of the init containers' records (by Stage and DeliveryMode)."""
        return self._own(name, {emf.STAGE: self.stage, emf.MODE: self.mode}, statistic, period)

    def stage_metric(self, name: str, statistic: str = "Sum", period: cdk.Duration = FIVE_MINUTES) -> cw.Metric:
        """A metric summed over the stage (seed results, the task notifier's metrics)."""
        return self._own(name, {emf.STAGE: self.stage}, statistic, period)

    def _own(self, name: str, dimensions: dict, statistic: str, period: cdk.Duration) -> cw.Metric:
        if name not in emf.UNITS and name not in NOTIFIER_METRICS:
            raise ModelDeliveryError(f'no model delivery metric is called {name!r}: see docs/runtime.md, "Metrics"')
        return cw.Metric(
            namespace=self.namespace, metric_name=name, dimensions_map=dimensions, statistic=statistic, period=period
        )

    def tasks(self, name: str, period: cdk.Duration = ONE_MINUTE) -> cw.Metric:
        """RunningTaskCount, DesiredTaskCount, PendingTaskCount (Container Insights, by cluster and service)."""
        return cw.Metric(
            namespace="ECS/ContainerInsights",
            metric_name=name,
            statistic="Average",
            period=period,
            dimensions_map={"ClusterName": self.service.cluster.cluster_name, "ServiceName": self.service.service_name},
        )

    def efs(self, name: str, statistic: str, period: cdk.Duration = ONE_MINUTE) -> cw.Metric:
        if self.file_system_id is None:
            raise ModelDeliveryError(f"EFS metric {name}: this delivery has no EFS mirror (give the store a mirror)")
        return cw.Metric(
            namespace="AWS/EFS",
            metric_name=name,
            statistic=statistic,
            period=period,
            dimensions_map={"FileSystemId": self.file_system_id},
        )

    def efs_throughput_percent(self, period: cdk.Duration = ONE_MINUTE) -> cw.MathExpression:
        # EFS user guide, "Amazon CloudWatch metrics for Amazon EFS": MeteredIOBytes equal to PermittedThroughput
        # means the file system uses all the throughput it is allowed.
        return cw.MathExpression(
            expression="(metered / PERIOD(metered)) / permitted * 100",
            period=period,
            label="EFS throughput used (% of permitted)",
            using_metrics={
                "metered": self.efs("MeteredIOBytes", "Sum", period),
                "permitted": self.efs("PermittedThroughput", "Average", period),
            },
        )

    def efs_mib_per_second(self, period: cdk.Duration = FIVE_MINUTES) -> cw.MathExpression:
        return cw.MathExpression(
            expression="total / 1048576 / PERIOD(total)",
            period=period,
            label="EFS throughput (MiB/s)",
            using_metrics={"total": self.efs("TotalIOBytes", "Sum", period)},
        )


class ModelDeliveryAlarms(Construct):
    """Alarms on an encrypted SNS topic, and the seed results published to it.

    Props:
      store: the ModelStore (its key encrypts the topic; with a mirror, EFS alarms in mode "efs").
      service: the Fargate service whose task definition carries `delivery`.
      delivery: the ModelDelivery of that task definition (its init container and mode).
      stage: the Stage dimension of the metrics (1-200 letters, digits, - and _).
      seeding: the ModelSeeding, or None (no seed results, no seed runner alarm).
      load_balancing: LoadBalancing(load_balancer, target_group), or None.
      email: an address to subscribe to the topic (it must confirm the subscription), or None.
      thresholds: AlarmThresholds.
      namespace: the metrics' CloudWatch namespace (default ModelDelivery).
      name_prefix: alarm names are <name_prefix>-<Alarm> (default ModelDelivery-<stage>).
      log_retention_days: of the task notifier's log group.
    The init and seeding containers get MODELSYNC_METRICS_NAMESPACE and MODELSYNC_STAGE (the init container
    also MODELSYNC_DELIVERY_MODE): modelsync writes the records these alarms read.
    Attributes: topic, alarms ({name: Alarm}), notifier (TaskNotifier), metrics (DeliveryMetrics), name_prefix.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        store: ModelStore,
        service: ecs.FargateService,
        delivery: ModelDelivery,
        stage: str,
        seeding: ModelSeeding | None = None,
        load_balancing: LoadBalancing | None = None,
        email: str | None = None,
        thresholds: AlarmThresholds = AlarmThresholds(),
        namespace: str = DEFAULT_NAMESPACE,
        name_prefix: str | None = None,
        log_retention_days: int = 30,
    ) -> None:
        super().__init__(scope, id)
        self.name_prefix = name_prefix if name_prefix is not None else f"ModelDelivery-{stage}"
        _check_props(stage, namespace, self.name_prefix, email, thresholds)
        if delivery.init.task_definition is not service.task_definition:
            raise ModelDeliveryError(
                "ModelDeliveryAlarms delivery belongs to another task definition than service: "
                "give the ModelDelivery attached to the service's task definition"
            )
        mirror = store.require_mirror("ModelDeliveryAlarms of mode 'efs'") if delivery.mode == "efs" else None
        self.topic = sns.Topic(
            self, "Topic", master_key=store.key, enforce_ssl=True, display_name=f"Model delivery {stage}"
        )
        self._let_alarms_publish(store)
        if email:
            self.topic.add_subscription(subscriptions.EmailSubscription(email))
        _enable_metrics(delivery, seeding, namespace, stage)
        self.notifier = TaskNotifier(
            self,
            "Notifier",
            cluster=service.cluster,
            service_task=service.task_definition,
            init_container=delivery.init,
            seeding=seeding,
            topic=self.topic,
            encryption=store.log_encryption,
            stage=stage,
            namespace=namespace,
            log_retention_days=log_retention_days,
        )
        self.metrics = DeliveryMetrics(
            namespace=namespace,
            stage=stage,
            mode=delivery.mode,
            service=service,
            seeding=seeding,
            file_system_id=mirror.file_system.file_system_id if mirror else None,
            notifier_function=self.notifier.function,
        )
        self.load_balancing = load_balancing
        self.alarms: dict[str, cw.Alarm] = {}
        self._add_alarms(thresholds, seeding, load_balancing)

    def _let_alarms_publish(self, store: ModelStore) -> None:
        key_stack = cdk.Stack.of(store.key)
        alarms = key_stack.format_arn(
            service="cloudwatch",
            resource="alarm",
            resource_name=f"{self.name_prefix}-*",
            arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
        )
        source = {"StringEquals": {"aws:SourceAccount": key_stack.account}, "ArnLike": {"aws:SourceArn": alarms}}
        principal = iam.ServicePrincipal("cloudwatch.amazonaws.com")
        store.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid=f"AlarmTopic{_sid(self.name_prefix)}",
                principals=[principal],
                resources=["*"],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                conditions=source,
            )
        )
        self.topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchAlarmsPublish",
                principals=[principal],
                actions=["sns:Publish"],
                resources=[self.topic.topic_arn],
                conditions=source,
            )
        )

    def _add_alarms(self, t: AlarmThresholds, seeding: ModelSeeding | None, lb: LoadBalancing | None) -> None:
        m = self.metrics
        gap = cw.MathExpression(
            expression="FILL(desired, 0) - FILL(running, 0)",
            period=ONE_MINUTE,
            label="Tasks below the desired count",
            using_metrics={"desired": m.tasks("DesiredTaskCount"), "running": m.tasks("RunningTaskCount")},
        )
        self._alarm(
            "TasksBelowDesired",
            gap,
            1,
            t.tasks_below_desired_minutes,
            f"The service has run fewer tasks than desired for {t.tasks_below_desired_minutes} minutes "
            "(tasks failing to start, or being replaced).",
        )
        self._alarm(
            "InitContainerFailed",
            m.stage_metric("InitFailures"),
            1,
            1,
            "A service task stopped because its init container (model-pull / model-verify) failed, or "
            "before it could run: its tasks cannot get their models.",
        )
        if m.mode == "s3":
            self._alarm(
                "ModelPullSlow",
                m.delivery("PullSeconds", "Maximum"),
                t.pull_seconds,
                1,
                f"A task start spent more than {t.pull_seconds} s pulling its models.",
                comparison=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
            )
        if seeding is not None:
            self._alarm(
                "SeedRunnerErrors",
                seeding.runner.function.metric_errors(period=FIVE_MINUTES),
                1,
                1,
                "The seed runner Lambda failed: a seeding task (make seed, or seed_on_deploy) did not start.",
            )
        self._alarm(
            "TaskNotifierErrors",
            m.notifier_function.metric_errors(period=FIVE_MINUTES),
            1,
            1,
            "The task notifier failed on an ECS task event: a seed result or an init failure may be "
            "missing (after retries the raw event is sent to this topic).",
        )
        if m.file_system_id is not None:
            self._alarm(
                "EfsIoLimit",
                m.efs("PercentIOLimit", "Maximum"),
                t.efs_io_limit_percent,
                5,
                f"The EFS mirror has been at {t.efs_io_limit_percent} % or more of its I/O limit for 5 "
                "minutes: model reads of every task slow down.",
            )
            self._alarm(
                "EfsThroughputLimit",
                m.efs_throughput_percent(),
                t.efs_throughput_percent,
                5,
                f"The EFS mirror has used {t.efs_throughput_percent} % or more of its permitted "
                "throughput for 5 minutes.",
            )
        if lb is not None:
            errors = cw.MathExpression(
                expression="FILL(target, 0) + FILL(elb, 0)",
                period=FIVE_MINUTES,
                label="5xx responses",
                using_metrics={
                    "target": lb.load_balancer.metrics.http_code_target(
                        elbv2.HttpCodeTarget.TARGET_5XX_COUNT, period=FIVE_MINUTES, statistic="Sum"
                    ),
                    "elb": lb.load_balancer.metrics.http_code_elb(
                        elbv2.HttpCodeElb.ELB_5XX_COUNT, period=FIVE_MINUTES, statistic="Sum"
                    ),
                },
            )
            self._alarm(
                "LoadBalancer5xx",
                errors,
                t.http_5xx_count,
                1,
                f"{t.http_5xx_count} or more 5xx responses in 5 minutes (from the app or the load balancer).",
            )
            self._alarm(
                "UnhealthyTargets",
                lb.target_group.metrics.unhealthy_host_count(period=ONE_MINUTE, statistic="Maximum"),
                1,
                t.unhealthy_targets_minutes,
                f"A target has failed the load balancer's health check for {t.unhealthy_targets_minutes} minutes.",
            )

    def _alarm(
        self,
        name: str,
        metric: cw.IMetric,
        threshold: float,
        periods: int,
        meaning: str,
        *,
        comparison: cw.ComparisonOperator = cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
    ) -> None:
        alarm = cw.Alarm(
            self,
            name,
            alarm_name=f"{self.name_prefix}-{name}",
            metric=metric,
            threshold=threshold,
            evaluation_periods=periods,
            datapoints_to_alarm=periods,
            comparison_operator=comparison,
            # No data is no news: no task started, no seed ran, no request came.
            treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
            alarm_description=f"{meaning} What to do first: {RUNBOOK} ({name}).",
        )
        alarm.add_alarm_action(cw_actions.SnsAction(self.topic))
        alarm.add_ok_action(cw_actions.SnsAction(self.topic))
        self.alarms[name] = alarm


def _check_props(stage: str, namespace: str, name_prefix: str, email: str | None, thresholds) -> None:
    if not isinstance(stage, str) or not NAME_PREFIX.fullmatch(stage):
        raise ModelDeliveryError(
            f"ModelDeliveryAlarms stage = {stage!r} is not allowed: use 1-200 letters, digits, "
            "'-' or '_' (it names the metrics' Stage dimension)"
        )
    if not isinstance(namespace, str) or not emf.NAMESPACE_RE.fullmatch(namespace):
        raise ModelDeliveryError(
            f"ModelDeliveryAlarms namespace = {namespace!r} is not allowed: use a CloudWatch "
            "namespace (1-255 printable ASCII characters, not starting with ':' or AWS/)"
        )
    if not NAME_PREFIX.fullmatch(name_prefix):
        raise ModelDeliveryError(
            f"ModelDeliveryAlarms name_prefix = {name_prefix!r} is not allowed: use 1-200 letters, digits, '-' or '_'"
        )
    if email is not None and not EMAIL.fullmatch(email):
        raise ModelDeliveryError(
            f"ModelDeliveryAlarms email = {email!r} is not allowed: use one email address "
            "such as ops@example.com, or None"
        )
    if not isinstance(thresholds, AlarmThresholds):
        raise ModelDeliveryError(
            "ModelDeliveryAlarms thresholds is not an AlarmThresholds: build it with AlarmThresholds(...)"
        )


def _enable_metrics(delivery: ModelDelivery, seeding: ModelSeeding | None, namespace: str, stage: str) -> None:
    """The variables modelsync reads to write its EMF records (modelsync/metrics.py)."""
    for container in [delivery.init] + ([seeding.task.container] if seeding is not None else []):
        container.add_environment(emf.NAMESPACE_ENV, namespace)
        container.add_environment(emf.STAGE_ENV, stage)
    delivery.init.add_environment(emf.MODE_ENV, delivery.mode)


def _sid(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "", text)
