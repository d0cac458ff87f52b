"""When the alarms fire: AlarmThresholds for one app's service, MirrorAlarmThresholds for the shared EFS mirror.

Each field's range lives in RANGES, checked once, in `check_threshold`: by the dataclasses here and by the
app's settings (which pass the setting's name as `where`).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from model_delivery.errors import ModelDeliveryError

# threshold field -> (lowest, highest, what it is)
RANGES: dict[str, tuple[int, int, str]] = {
    "tasks_below_desired_minutes": (1, 1440, "minutes the service may run fewer tasks than desired"),
    "pull_seconds": (1, 86400, "seconds a task start's model pull may take"),
    "http_5xx_count": (1, 1_000_000, "5xx responses from the targets and the load balancer in 5 minutes"),
    "unhealthy_targets_minutes": (1, 1440, "minutes a target may stay unhealthy"),
    "io_limit_percent": (1, 100, "percent of the EFS I/O limit (PercentIOLimit) for 5 minutes"),
    "throughput_percent": (1, 100, "percent of the permitted EFS throughput for 5 minutes"),
}


def check_threshold(name: str, value: object, where: str) -> int:
    low, high, what = RANGES[name]
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ModelDeliveryError(
            f"{where} = {value!r} is not allowed: use a whole number from {low} to {high} ({what})"
        )
    return value


def _check_fields(thresholds: AlarmThresholds | MirrorAlarmThresholds) -> None:
    for field in fields(thresholds):
        check_threshold(field.name, getattr(thresholds, field.name), f"{type(thresholds).__name__} {field.name}")


@dataclass(frozen=True)
class AlarmThresholds:
    """One app's service alarms."""

    tasks_below_desired_minutes: int = 10
    pull_seconds: int = 300
    http_5xx_count: int = 10
    unhealthy_targets_minutes: int = 5

    def __post_init__(self) -> None:
        _check_fields(self)


@dataclass(frozen=True)
class MirrorAlarmThresholds:
    """The EFS mirror's alarms (one file system, shared by the apps of a stage)."""

    io_limit_percent: int = 90
    throughput_percent: int = 80

    def __post_init__(self) -> None:
        _check_fields(self)
