"""Model delivery's CloudWatch metrics: where the containers write them (MetricsOptions) and how alarms and
dashboards read them back (DeliveryMetrics for one app's deliveries, StageMetrics for what the apps share).

modelsync writes one Embedded Metric Format record per job (modelsync/metrics.py) when its container has
MODELSYNC_METRICS_NAMESPACE; the dimensions come from MODELSYNC_STAGE, MODELSYNC_APP and
MODELSYNC_DELIVERY_MODE. The task notifier (lambdas/task_notifier) writes InitFailures by Stage and App and
the seed results by Stage. The names: docs/runtime.md, "Metrics".
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_ecs as ecs

from model_delivery.errors import ModelDeliveryError
from modelsync import metrics as emf

DEFAULT_NAMESPACE = emf.DEFAULT_NAMESPACE
# Emitted by lambdas/task_notifier.
NOTIFIER_METRICS = ("InitFailures", "SeedTasks", "SeedTaskFailed", "SignTasks", "SignTaskFailed")
DIMENSION = re.compile(r"[A-Za-z0-9_-]{1,200}")  # a stage or app name: also part of alarm and dashboard names
FIVE_MINUTES = cdk.Duration.minutes(5)
ONE_MINUTE = cdk.Duration.minutes(1)


def check_dimension(value: object, where: str) -> str:
    if not isinstance(value, str) or not DIMENSION.fullmatch(value):
        raise ModelDeliveryError(
            f"{where} = {value!r} is not allowed: use 1-200 letters, digits, '-' or '_' "
            "(it names a metrics dimension and is part of alarm names)"
        )
    return value


@dataclass(frozen=True)
class MetricsOptions:
    """Where a container's metrics go: the namespace, the Stage dimension and, for an app's init container,
    the App dimension (apps of one stage keep their figures apart)."""

    stage: str
    app: str | None = None
    namespace: str = DEFAULT_NAMESPACE

    def __post_init__(self) -> None:
        check_dimension(self.stage, "MetricsOptions stage")
        if self.app is not None:
            check_dimension(self.app, "MetricsOptions app")
        if not isinstance(self.namespace, str) or not emf.NAMESPACE_RE.fullmatch(self.namespace):
            raise ModelDeliveryError(
                f"MetricsOptions namespace = {self.namespace!r} is not allowed: use a CloudWatch "
                "namespace (1-255 printable ASCII characters, not starting with ':' or AWS/)"
            )

    def environment(self, mode: str | None = None) -> dict[str, str]:
        """The variables modelsync reads to write its records."""
        variables = {emf.NAMESPACE_ENV: self.namespace, emf.STAGE_ENV: self.stage}
        if self.app is not None:
            variables[emf.APP_ENV] = self.app
        if mode is not None:
            variables[emf.MODE_ENV] = mode
        return variables


def _metric(options: MetricsOptions, name: str, dimensions: dict, statistic: str, period: cdk.Duration) -> cw.Metric:
    if name not in emf.UNITS and name not in NOTIFIER_METRICS:
        raise ModelDeliveryError(f'no model delivery metric is called {name!r}: see docs/runtime.md, "Metrics"')
    return cw.Metric(
        namespace=options.namespace, metric_name=name, dimensions_map=dimensions, statistic=statistic, period=period
    )


class StageMetrics:
    """What the apps of a stage share: seed results, the task notifier's sums, the EFS mirror."""

    def __init__(self, options: MetricsOptions, file_system_id: str | None = None) -> None:
        self.options, self.file_system_id = options, file_system_id

    def stage_metric(self, name: str, statistic: str = "Sum", period: cdk.Duration = FIVE_MINUTES) -> cw.Metric:
        return _metric(self.options, name, {emf.STAGE: self.options.stage}, statistic, period)

    def efs(self, name: str, statistic: str, period: cdk.Duration = ONE_MINUTE) -> cw.Metric:
        if self.file_system_id is None:
            raise ModelDeliveryError(f"EFS metric {name}: the store has no EFS mirror (give the store a mirror)")
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


class DeliveryMetrics:
    """The metrics of one app's model delivery: its init containers' records, its init failures, its tasks."""

    def __init__(self, options: MetricsOptions, mode: str, service: ecs.FargateService) -> None:
        self.options, self.mode, self.service = options, mode, service

    @property
    def _app(self) -> dict[str, str]:
        return {} if self.options.app is None else {emf.APP: self.options.app}

    def delivery(self, name: str, statistic: str = "Sum", period: cdk.Duration = FIVE_MINUTES) -> cw.Metric:
        """A metric of this app's init container records (by Stage, App and DeliveryMode)."""
        dimensions = {emf.STAGE: self.options.stage, **self._app, emf.MODE: self.mode}
        return _metric(self.options, name, dimensions, statistic, period)

    def init_failures(self, period: cdk.Duration = FIVE_MINUTES) -> cw.Metric:
        """Tasks of this app whose init container failed (the task notifier's records, by Stage and App)."""
        return _metric(self.options, "InitFailures", {emf.STAGE: self.options.stage, **self._app}, "Sum", period)

    def tasks(self, name: str, period: cdk.Duration = ONE_MINUTE) -> cw.Metric:
        """RunningTaskCount, DesiredTaskCount, PendingTaskCount (Container Insights, by cluster and service)."""
        return cw.Metric(
            namespace="ECS/ContainerInsights",
            metric_name=name,
            statistic="Average",
            period=period,
            dimensions_map={"ClusterName": self.service.cluster.cluster_name, "ServiceName": self.service.service_name},
        )


WIDTH, HEIGHT = 12, 6  # two graphs per row of a dashboard's 24-unit grid


def graph(
    title: str, left: list[cw.IMetric], *, right: list[cw.IMetric] | None = None, period: cdk.Duration = FIVE_MINUTES
) -> cw.GraphWidget:
    return cw.GraphWidget(title=title, left=left, right=right or [], width=WIDTH, height=HEIGHT, period=period)
