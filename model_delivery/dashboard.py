"""ModelDeliveryDashboard: one CloudWatch dashboard per stage, drawn from the metrics ModelDeliveryAlarms reads.

Rows: the alarms' state; model delivery per task start (pull time and bytes in s3 mode, the mirror check in efs
mode, the view); task counts and init failures; seed results; the EFS mirror; the load balancer (when there
is one)."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cw
from constructs import Construct

from model_delivery.errors import ModelDeliveryError
from model_delivery.monitoring import FIVE_MINUTES, ModelDeliveryAlarms

WIDTH, HEIGHT = 12, 6  # two graphs per row of the 24-unit grid


class ModelDeliveryDashboard(Construct):
    """Props: alarms (the stage's ModelDeliveryAlarms), dashboard_name (default: the alarms' name prefix).
    Attribute: dashboard."""

    def __init__(
        self, scope: Construct, id: str, *, alarms: ModelDeliveryAlarms, dashboard_name: str | None = None
    ) -> None:
        super().__init__(scope, id)
        if not isinstance(alarms, ModelDeliveryAlarms):
            raise ModelDeliveryError(
                "ModelDeliveryDashboard alarms is not a ModelDeliveryAlarms: create those first and pass them"
            )
        m = alarms.metrics
        rows: list[list[cw.IWidget]] = [
            [
                cw.TextWidget(
                    markdown=f"# Model delivery {m.stage} ({m.mode} mode)\nAlarms and what to do first: "
                    'docs/runbook.md, "Alarms". Metrics: docs/runtime.md, "Metrics".',
                    width=24,
                    height=2,
                )
            ],
            [cw.AlarmStatusWidget(title="Alarms", alarms=list(alarms.alarms.values()), width=24, height=3)],
        ]
        if m.mode == "s3":
            rows.append(
                [
                    graph(
                        "Model pull time per task start (s)",
                        [m.delivery("PullSeconds", "Maximum"), m.delivery("PullSeconds", "Average")],
                    ),
                    graph("Pulled per task start", [m.delivery("PullBytes")], right=[m.delivery("PullFiles")]),
                ]
            )
        else:
            rows.append(
                [
                    graph("EFS mirror check at task start", [m.delivery("VerifyModels"), m.delivery("VerifyFailures")]),
                    graph("View build time per task start (s)", [m.delivery("ViewSeconds", "Maximum")]),
                ]
            )
        failures: list[cw.IMetric] = [m.stage_metric("InitFailures")]
        if m.mode == "s3":
            failures += [m.delivery("PullFailures"), m.delivery("PullRetries")]
        rows.append(
            [
                graph(
                    "Tasks", [m.tasks(name) for name in ("DesiredTaskCount", "RunningTaskCount", "PendingTaskCount")]
                ),
                graph("Init failures", failures),
            ]
        )
        if m.seeding is not None:
            rows.append(
                [
                    graph(
                        "Seed results (models)",
                        [m.stage_metric(name) for name in ("SeedPublished", "SeedUnchanged", "SeedFailed")],
                        right=[m.stage_metric("SeedTaskFailed")],
                        period=cdk.Duration.hours(1),
                    ),
                    graph(
                        "Seeding: bytes",
                        [
                            m.stage_metric("SeedDownloadedBytes"),
                            m.stage_metric("SeedUploadedBytes"),
                            m.stage_metric("MirrorBytes"),
                        ],
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
        self.dashboard = cw.Dashboard(
            self, "Dashboard", dashboard_name=dashboard_name or alarms.name_prefix, widgets=rows
        )


def graph(
    title: str, left: list[cw.IMetric], *, right: list[cw.IMetric] | None = None, period: cdk.Duration = FIVE_MINUTES
) -> cw.GraphWidget:
    return cw.GraphWidget(title=title, left=left, right=right or [], width=WIDTH, height=HEIGHT, period=period)
