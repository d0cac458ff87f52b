"""Alarms that page when model delivery breaks, all on the stage's AlarmTopic (model_delivery/alarm_topic.py).

ModelDeliveryAlarms, one per app's service (named `<prefix>-<app>-<Alarm>`; thresholds: AlarmThresholds):
  TasksBelowDesired     ECS/ContainerInsights DesiredTaskCount - RunningTaskCount >= 1 for N minutes
  InitContainerFailed   InitFailures of this app (the task notifier's metric) >= 1 in 5 minutes
  the delivery mode's own (model_delivery/modes.py), e.g. ModelPullSlow: PullSeconds above the threshold (s3)
  LoadBalancer5xx       target and load balancer 5xx responses in 5 minutes (with a load balancer)
  UnhealthyTargets      UnHealthyHostCount >= 1 for N minutes (with a load balancer)
ModelStoreAlarms, one per stage, on what the apps share (named `<prefix>-<Alarm>`):
  SeedRunnerErrors      the seed runner Lambda's Errors >= 1 (seed_on_deploy invokes it asynchronously)
  TaskNotifierErrors    the task notifier's Errors >= 1 (a seed result may not have been delivered)
  EfsIoLimit            AWS/EFS PercentIOLimit at or above the threshold for 5 minutes (when an app reads the mirror)
  EfsThroughputLimit    MeteredIOBytes per second as a percentage of PermittedThroughput, likewise
What to do for each: docs/runbook.md, "Alarms".
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from constructs import Construct

from model_delivery.alarm_topic import AlarmSpec, AlarmTopic
from model_delivery.delivery import ModelDelivery
from model_delivery.errors import ModelDeliveryError
from model_delivery.metrics import FIVE_MINUTES, ONE_MINUTE, DeliveryMetrics, MetricsOptions, StageMetrics
from model_delivery.notifier import TaskNotifier
from model_delivery.seeding import SeedRunner
from model_delivery.store import ModelStore
from model_delivery.thresholds import AlarmThresholds, MirrorAlarmThresholds

DEFAULT_THRESHOLDS = AlarmThresholds()
DEFAULT_MIRROR_THRESHOLDS = MirrorAlarmThresholds()


@dataclass(frozen=True)
class LoadBalancing:
    """The service's load balancer and its target group (for the 5xx and unhealthy-target alarms)."""

    load_balancer: elbv2.IApplicationLoadBalancer
    target_group: elbv2.IApplicationTargetGroup


class ModelDeliveryAlarms(Construct):
    """The alarms of one app's service.

    Props:
      topic: the stage's AlarmTopic.
      notifier: the stage's TaskNotifier (it counts this service's init failures; this construct adds the rule).
      service: the Fargate service whose task definition carries `delivery`.
      delivery: the ModelDelivery of that task definition, created with metrics=MetricsOptions(...).
      load_balancing: LoadBalancing(load_balancer, target_group), or None.
      thresholds: AlarmThresholds.
    Attributes: alarms ({name: Alarm}), metrics (DeliveryMetrics), load_balancing, app (the metrics' app or None).
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        topic: AlarmTopic,
        notifier: TaskNotifier,
        service: ecs.FargateService,
        delivery: ModelDelivery,
        load_balancing: LoadBalancing | None = None,
        thresholds: AlarmThresholds = DEFAULT_THRESHOLDS,
    ) -> None:
        super().__init__(scope, id)
        if delivery.init.task_definition is not service.task_definition:
            raise ModelDeliveryError(
                "ModelDeliveryAlarms delivery belongs to another task definition than service: "
                "give the ModelDelivery attached to the service's task definition"
            )
        if delivery.metrics is None:
            raise ModelDeliveryError(
                "ModelDeliveryAlarms needs the delivery's metrics: create the ModelDelivery with "
                "metrics=MetricsOptions(stage=..., app=...)"
            )
        if not isinstance(thresholds, AlarmThresholds):
            raise ModelDeliveryError(
                "ModelDeliveryAlarms thresholds is not an AlarmThresholds: build it with AlarmThresholds(...)"
            )
        self.app = delivery.metrics.app
        self.metrics = DeliveryMetrics(delivery.metrics, delivery.mode, service)
        self.load_balancing = load_balancing
        self.delivery_mode = delivery.delivery_mode
        notifier.watch(self, delivery, self.app)
        specs = _service_alarms(self.metrics, thresholds)
        specs += delivery.delivery_mode.alarms(self.metrics, thresholds)
        if load_balancing is not None:
            specs += _load_balancer_alarms(load_balancing, thresholds)
        self.alarms = {spec.name: topic.add_alarm(self, spec, group=self.app) for spec in specs}


def _service_alarms(m: DeliveryMetrics, t: AlarmThresholds) -> list[AlarmSpec]:
    gap = cw.MathExpression(
        expression="FILL(desired, 0) - FILL(running, 0)",
        period=ONE_MINUTE,
        label="Tasks below the desired count",
        using_metrics={"desired": m.tasks("DesiredTaskCount"), "running": m.tasks("RunningTaskCount")},
    )
    return [
        AlarmSpec(
            "TasksBelowDesired",
            gap,
            1,
            t.tasks_below_desired_minutes,
            f"The service has run fewer tasks than desired for {t.tasks_below_desired_minutes} minutes "
            "(tasks failing to start, or being replaced).",
        ),
        AlarmSpec(
            "InitContainerFailed",
            m.init_failures(),
            1,
            1,
            "A service task stopped because its init container failed, or before it could run: its tasks "
            "cannot get their models.",
        ),
    ]


def _load_balancer_alarms(lb: LoadBalancing, t: AlarmThresholds) -> list[AlarmSpec]:
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
    return [
        AlarmSpec(
            "LoadBalancer5xx",
            errors,
            t.http_5xx_count,
            1,
            f"{t.http_5xx_count} or more 5xx responses in 5 minutes (from the app or the load balancer).",
        ),
        AlarmSpec(
            "UnhealthyTargets",
            lb.target_group.metrics.unhealthy_host_count(period=ONE_MINUTE, statistic="Maximum"),
            1,
            t.unhealthy_targets_minutes,
            f"A target has failed the load balancer's health check for {t.unhealthy_targets_minutes} minutes.",
        ),
    ]


class ModelStoreAlarms(Construct):
    """The alarms on what the apps of a stage share: the seed runner, the task notifier and the EFS mirror.

    Props:
      topic: the stage's AlarmTopic.
      store: the ModelStore.
      notifier: the stage's TaskNotifier.
      metrics: MetricsOptions (namespace and stage) of the stage's records.
      seed_runner: the SeedRunner, or None (no seed runner alarm, no seed rows on the dashboard).
      watch_mirror: alarm on the EFS mirror's limits (an app reads it); needs the store's mirror.
      thresholds: MirrorAlarmThresholds.
    Attributes: alarms ({name: Alarm}), metrics (StageMetrics), seed_runner, watch_mirror.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        topic: AlarmTopic,
        store: ModelStore,
        notifier: TaskNotifier,
        metrics: MetricsOptions,
        seed_runner: SeedRunner | None = None,
        watch_mirror: bool = False,
        thresholds: MirrorAlarmThresholds = DEFAULT_MIRROR_THRESHOLDS,
    ) -> None:
        super().__init__(scope, id)
        if not isinstance(thresholds, MirrorAlarmThresholds):
            raise ModelDeliveryError(
                "ModelStoreAlarms thresholds is not a MirrorAlarmThresholds: build it with MirrorAlarmThresholds(...)"
            )
        mirror = store.require_mirror("ModelStoreAlarms watch_mirror") if watch_mirror else None
        self.metrics = StageMetrics(metrics, mirror.file_system.file_system_id if mirror else None)
        self.seed_runner, self.watch_mirror = seed_runner, watch_mirror
        specs: list[AlarmSpec] = []
        if seed_runner is not None:
            specs.append(
                AlarmSpec(
                    "SeedRunnerErrors",
                    seed_runner.function.metric_errors(period=FIVE_MINUTES),
                    1,
                    1,
                    "The seed runner Lambda failed: a seeding task (make seed, or seed_on_deploy) did not start.",
                )
            )
        specs.append(
            AlarmSpec(
                "TaskNotifierErrors",
                notifier.function.metric_errors(period=FIVE_MINUTES),
                1,
                1,
                "The task notifier failed on an ECS task event: a seed result or an init failure may be "
                "missing (after retries the raw event is sent to this topic).",
            )
        )
        if mirror is not None:
            m, t = self.metrics, thresholds
            specs += [
                AlarmSpec(
                    "EfsIoLimit",
                    m.efs("PercentIOLimit", "Maximum"),
                    t.io_limit_percent,
                    5,
                    f"The EFS mirror has been at {t.io_limit_percent} % or more of its I/O limit for 5 "
                    "minutes: model reads of every task slow down.",
                ),
                AlarmSpec(
                    "EfsThroughputLimit",
                    m.efs_throughput_percent(),
                    t.throughput_percent,
                    5,
                    f"The EFS mirror has used {t.throughput_percent} % or more of its permitted "
                    "throughput for 5 minutes.",
                ),
            ]
        self.alarms = {spec.name: topic.add_alarm(self, spec) for spec in specs}
