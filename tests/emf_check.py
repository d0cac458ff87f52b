"""Reads CloudWatch Embedded Metric Format records out of log text and checks each against the rules of the
EMF specification (CloudWatch User Guide, "Specification: Embedded metric format"), as CloudWatch Logs would
before it extracts metrics: any record that breaks a rule fails the test that reads it.

Used by the runtime tests (modelsync's records), the `make local` test and the task notifier's tests.
"""

from __future__ import annotations

import json
import numbers

# The units a MetricDefinition may name (the specification's list, CloudWatch's StandardUnit).
UNITS = frozenset(
    "Seconds Microseconds Milliseconds Bytes Kilobytes Megabytes Gigabytes Terabytes Bits Kilobits Megabits "
    "Gigabits Terabits Percent Count Bytes/Second Kilobytes/Second Megabytes/Second Gigabytes/Second "
    "Terabytes/Second Bits/Second Kilobits/Second Megabits/Second Gigabits/Second Terabits/Second Count/Second "
    "None".split())


def records(text: str) -> list[dict]:
    """Every line of `text` that is an EMF record (a JSON object with `_aws`), each checked."""
    found = []
    for line in text.splitlines():
        if '"_aws"' not in line:
            continue
        record = json.loads(line)  # a log event must be exactly one JSON object, nothing around it
        check(record)
        found.append(record)
    return found


def check(record: dict) -> None:
    assert isinstance(record, dict), record
    meta = record["_aws"]
    assert isinstance(meta, dict) and set(meta) == {"Timestamp", "CloudWatchMetrics"}, meta
    assert isinstance(meta["Timestamp"], int) and not isinstance(meta["Timestamp"], bool), meta
    assert 1_500_000_000_000 < meta["Timestamp"] < 4_000_000_000_000, "Timestamp must be epoch milliseconds"
    directives = meta["CloudWatchMetrics"]
    assert isinstance(directives, list) and directives, meta
    for directive in directives:
        assert set(directive) == {"Namespace", "Dimensions", "Metrics"}, directive
        assert isinstance(directive["Namespace"], str) and 1 <= len(directive["Namespace"]) <= 255, directive
        sets = directive["Dimensions"]
        assert isinstance(sets, list) and len(sets) >= 1, "Dimensions needs at least one (maybe empty) set"
        for keys in sets:
            assert isinstance(keys, list) and len(keys) <= 30, keys
            for key in keys:
                value = record[key]  # the target member must be on the root node
                assert isinstance(value, str) and 1 <= len(value) <= 1024, (key, value)
        metrics = directive["Metrics"]
        assert isinstance(metrics, list) and 1 <= len(metrics) <= 100, metrics
        for metric in metrics:
            assert set(metric) <= {"Name", "Unit", "StorageResolution"} and "Name" in metric, metric
            assert metric.get("Unit", "None") in UNITS, metric
            value = record[metric["Name"]]
            assert isinstance(value, numbers.Real) and not isinstance(value, bool), (metric, value)


def values(record: dict) -> dict[str, tuple[float, str]]:
    """{metric name: (value, unit)} of a checked record."""
    return {m["Name"]: (record[m["Name"]], m.get("Unit", "None"))
            for d in record["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]}


def dimension_sets(record: dict) -> list[dict[str, str]]:
    """The metric identities the record creates: one {dimension: value} per dimension set."""
    return [{key: record[key] for key in keys}
            for d in record["_aws"]["CloudWatchMetrics"] for keys in d["Dimensions"]]


def namespace(record: dict) -> str:
    [name] = {d["Namespace"] for d in record["_aws"]["CloudWatchMetrics"]}
    return name
