"""cdk-nag AwsSolutions: every configuration is clean, and each acknowledgment really is what keeps
its finding out (an acknowledgment with a stale id would be silently ignored)."""

from __future__ import annotations

import pytest
from cdk_nag import AwsSolutionsChecks

import model_delivery.nag
from stacks.assembly import enable_nag

from .helpers import CONFIGS, build_app


@pytest.mark.parametrize("config", ["s3", "efs", "prod-ecr"])
def test_every_stack_is_nag_clean(s3_built, efs_built, prod_built, config):
    built = {"s3": s3_built, "efs": efs_built, "prod-ecr": prod_built}[config]
    for stack in built.delivery.stacks:
        report = AwsSolutionsChecks().validate_scope(stack)
        assert report.success, [v.rule_name for v in report.violations]


def test_the_app_synthesizes_with_nag_enforced(tmp_path):
    app, _ = build_app(CONFIGS["efs"], outdir=tmp_path)
    enable_nag(app)
    app.synth()  # raises on any unacknowledged finding
    assert sorted(p.name for p in tmp_path.glob("*.template.json")) == [
        "ModelDelivery-dev-Network.template.json", "ModelDelivery-dev-Service.template.json",
        "ModelDelivery-dev-Storage.template.json"]


@pytest.mark.parametrize("finding, config", [
    ("AwsSolutions-ECS2", "s3"),
    ("AwsSolutions-IAM5[Resource::*]", "s3"),
    ("/models/*]", "s3"),
    (":task/<Cluster", "s3"),
    ("AwsSolutions-EC23", "internal-ingress"),
])
def test_removing_an_acknowledgment_brings_its_finding_back(monkeypatch, tmp_path, finding, config):
    real = model_delivery.nag.acknowledge
    dropped = []

    def all_but_one(construct, finding_id, reason):
        if finding in finding_id:
            dropped.append(finding_id)
            return
        real(construct, finding_id, reason)

    monkeypatch.setattr(model_delivery.nag, "acknowledge", all_but_one)
    app, delivery = build_app(CONFIGS[config], outdir=tmp_path)
    assert dropped, f"no acknowledgment matches {finding!r}"
    violations = {v.rule_name for stack in delivery.stacks
                  for v in AwsSolutionsChecks().validate_scope(stack).violations}
    assert violations == set(dropped)
    enable_nag(app)
    with pytest.raises(Exception) as caught:
        app.synth()
    assert dropped[0] in str(caught.value)
