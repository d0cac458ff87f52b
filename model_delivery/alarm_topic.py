"""AlarmTopic: the one SNS topic of a stage that every model delivery alarm and every seed result goes to,
encrypted with the store's key, and the alarms themselves (AlarmSpec, AlarmTopic.add_alarm).

CloudWatch alarms publish as cloudwatch.amazonaws.com, so the key policy lets that principal use the key and
the topic policy lets it publish, both only for this account's alarms named `<name_prefix>-*` (aws:SourceAccount,
aws:SourceArn: SNS developer guide, "Enable compatibility between event sources from AWS services and
encrypted topics"). Nothing publishes through EventBridge directly (the task notifier publishes with its own
role), so the key needs no grant for events.amazonaws.com, the one case where SNS does not support those
source conditions. Every alarm notifies the topic when it goes to ALARM and when it is OK again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from model_delivery.errors import ModelDeliveryError
from model_delivery.metrics import DIMENSION, check_dimension
from model_delivery.store import ModelStore

EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
RUNBOOK = "docs/runbook.md#alarms"


def check_email(email: object, where: str) -> None:
    if not isinstance(email, str) or not EMAIL.fullmatch(email):
        raise ModelDeliveryError(
            f"{where} = {email!r} is not allowed: use one email address such as ops@example.com (it gets the "
            "alarms and seed results, after confirming the subscription), or leave it empty for no subscription"
        )


@dataclass(frozen=True)
class AlarmSpec:
    """One alarm: `threshold` crossed in `periods` consecutive periods of `metric`; `meaning` opens its text."""

    name: str
    metric: cw.IMetric
    threshold: float
    periods: int
    meaning: str
    comparison: cw.ComparisonOperator = cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD


class AlarmTopic(Construct):
    """The stage's encrypted SNS topic for every alarm and seed result.

    Props:
      store: the ModelStore (its key encrypts the topic).
      stage: the stage's name (1-200 letters, digits, - and _): the topic's display name and the default prefix.
      email: an address to subscribe (it must confirm the subscription), or None.
      name_prefix: every alarm is named `<name_prefix>-...` (default ModelDelivery-<stage>); the key and topic
        policies let CloudWatch publish for alarms of that prefix only.
    Attributes: topic, name_prefix, stage."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        store: ModelStore,
        stage: str,
        email: str | None = None,
        name_prefix: str | None = None,
    ) -> None:
        super().__init__(scope, id)
        self.stage = check_dimension(stage, "AlarmTopic stage")
        self.name_prefix = name_prefix if name_prefix is not None else f"ModelDelivery-{stage}"
        if not DIMENSION.fullmatch(self.name_prefix):
            raise ModelDeliveryError(
                f"AlarmTopic name_prefix = {self.name_prefix!r} is not allowed: use 1-200 letters, digits, '-' or '_'"
            )
        if email is not None:
            check_email(email, "AlarmTopic email")
        self.topic = sns.Topic(
            self, "Topic", master_key=store.key, enforce_ssl=True, display_name=f"Model delivery {stage}"
        )
        self._let_alarms_publish(store)
        if email:
            self.topic.add_subscription(subscriptions.EmailSubscription(email))

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
                sid=f"AlarmTopic{re.sub(r'[^A-Za-z0-9]', '', self.name_prefix)}",
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

    def add_alarm(self, scope: Construct, spec: AlarmSpec, *, group: str | None = None) -> cw.Alarm:
        """The alarm `<name_prefix>[-<group>]-<spec.name>`, created in `scope`, notifying this topic."""
        name = "-".join(part for part in (self.name_prefix, group, spec.name) if part)
        alarm = cw.Alarm(
            scope,
            spec.name,
            alarm_name=name,
            metric=spec.metric,
            threshold=spec.threshold,
            evaluation_periods=spec.periods,
            datapoints_to_alarm=spec.periods,
            comparison_operator=spec.comparison,
            # No data is no news: no task started, no seed ran, no request came.
            treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
            alarm_description=f"{spec.meaning} What to do first: {RUNBOOK} ({spec.name}).",
        )
        alarm.add_alarm_action(cw_actions.SnsAction(self.topic))
        alarm.add_ok_action(cw_actions.SnsAction(self.topic))
        return alarm
