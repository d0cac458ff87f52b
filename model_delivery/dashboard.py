"""ModelDeliveryDashboard: one CloudWatch dashboard per stage, drawn from the metrics the alarms read.

Rows: the state of every alarm; then per app: its model delivery per task start (the delivery mode's row,
model_delivery/modes.py), its tasks and init failures, its load balancer (when it has one); then what the apps
share: seed results and, when an app reads it, the EFS mirror.
"""

from __future__ import annotations

from collections.abc import Sequence

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cw
from constructs import Construct

from model_delivery.errors import ModelDeliveryError
from model_delivery.metrics import FIVE_MINUTES, graph
from model_delivery.monitoring import ModelDeliveryAlarms, ModelStoreAlarms


class ModelDeliveryDashboard(Construct):
    """The stage's CloudWatch dashboard: a row per app, and the shared parts.

    Props: store_alarms (the stage's ModelStoreAlarms), app_alarms (each app's ModelDeliveryAlarms, in the
    order of their rows), dashboard_name (default ModelDelivery-<stage>). Attribute: dashboard."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        store_alarms: ModelStoreAlarms,
        app_alarms: Sequence[ModelDeliveryAlarms],
        dashboard_name: str | None = None,
    ) -> None:
        super().__init__(scope, id)
        if not isinstance(store_alarms, ModelStoreAlarms) or not all(
            isinstance(a, ModelDeliveryAlarms) for a in app_alarms
        ):
            raise ModelDeliveryError(
                "ModelDeliveryDashboard takes the stage's ModelStoreAlarms and each app's ModelDeliveryAlarms: "
                "create those first and pass them"
            )
        stage = store_alarms.metrics.options.stage
        every_alarm = [a for app in app_alarms for a in app.alarms.values()] + list(store_alarms.alarms.values())
        rows: list[list[cw.IWidget]] = [
            [
                cw.TextWidget(
                    markdown=f"# Model delivery {stage}\nAlarms and what to do first: "
                    'docs/runbook.md, "Alarms". Metrics: docs/runtime.md, "Metrics".',
                    width=24,
                    height=2,
                )
            ],
            [cw.AlarmStatusWidget(title="Alarms", alarms=every_alarm, width=24, height=3)],
        ]
        for alarms in app_alarms:
            rows += _app_rows(alarms)
        rows += _shared_rows(store_alarms)
        self.dashboard = cw.Dashboard(
            self, "Dashboard", dashboard_name=dashboard_name or f"ModelDelivery-{stage}", widgets=rows
        )


def _app_rows(alarms: ModelDeliveryAlarms) -> list[list[cw.IWidget]]:
    m, mode = alarms.metrics, alarms.delivery_mode
    title = f"App {alarms.app}" if alarms.app else "The service"
    rows: list[list[cw.IWidget]] = [
        [cw.TextWidget(markdown=f"## {title} ({mode.name} mode: {mode.summary})", width=24, height=1)],
        mode.dashboard_row(m),
        [
            graph("Tasks", [m.tasks(name) for name in ("DesiredTaskCount", "RunningTaskCount", "PendingTaskCount")]),
            graph("Init failures", [m.init_failures(), *mode.failure_metrics(m)]),
        ],
    ]
    lb = alarms.load_balancing
    if lb is not None:
        metrics = lb.load_balancer.metrics
        rows.append(
            [
                graph(
                    "Load balancer requests",
                    [metrics.request_count(period=FIVE_MINUTES, statistic="Sum")],
                    right=[lb.target_group.metrics.unhealthy_host_count(period=FIVE_MINUTES, statistic="Maximum")],
                ),
                graph(
                    "Load balancer latency (s)",
                    [metrics.target_response_time(period=FIVE_MINUTES, statistic=s) for s in ("p50", "p99")],
                ),
            ]
        )
    return rows


def _shared_rows(alarms: ModelStoreAlarms) -> list[list[cw.IWidget]]:
    m = alarms.metrics
    rows: list[list[cw.IWidget]] = [[cw.TextWidget(markdown="## Shared by the apps", width=24, height=1)]]
    if alarms.seed_runner is not None:
        rows.append(
            [
                graph(
                    "Seed results (models)",
                    [m.stage_metric(name) for name in ("SeedPublished", "SeedUnchanged", "SeedFailed")],
                    right=[m.stage_metric("SeedTaskFailed"), m.stage_metric("SignTaskFailed")],
                    period=cdk.Duration.hours(1),
                ),
                graph(
                    "Seeding: bytes",
                    [m.stage_metric(name) for name in ("SeedDownloadedBytes", "SeedUploadedBytes", "MirrorBytes")],
                    period=cdk.Duration.hours(1),
                ),
            ]
        )
    if m.file_system_id is not None:
        rows.append(
            [
                graph("EFS mirror throughput (MiB/s)", [m.efs_mib_per_second()]),
                graph(
                    "EFS mirror limits (%)",
                    [m.efs("PercentIOLimit", "Maximum", FIVE_MINUTES), m.efs_throughput_percent(FIVE_MINUTES)],
                ),
            ]
        )
    return rows
