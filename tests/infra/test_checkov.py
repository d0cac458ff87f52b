"""checkov over every synthesized template (every stack of the tested configurations, with and without a
load balancer): no failed check. A control that cannot apply is skipped in that resource's Metadata
(model_delivery/scanner.py) with its reason; EXPECTED_SKIPS lists every such skip, so none is added silently.
"""

from __future__ import annotations

import json
import re

import pytest

from .checkov import failures, run_checkov, skipped
from .helpers import CONFIGS, Built

# The ingress variants, and the README's two apps on one store (one internal over HTTP, one public over HTTPS).
INGRESS = {"internal-ingress": CONFIGS["internal-ingress"], "two-apps": CONFIGS["two-apps"],
           "public-https": {"apps.demo.ingress": "public", "apps.demo.certificate_arn": "arn:aws:acm:eu-west-1:111111111111:certificate/"
                                                                     "0a1b2c3d-4e5f-6789-abcd-ef0123456789"}}
CDK_LAMBDA = ("CKV_AWS_115", "CKV_AWS_116", "CKV_AWS_117")
# (stack, logical id pattern, check id) -> the configurations it appears in.
# The configurations whose network stack creates the VPC (deploy-access-reuse uses an existing one).
NEW_VPC = {"s3", "efs", "prod-ecr", "s3files", *INGRESS, "deploy-access"}
EXPECTED_SKIPS = {
    ("Network", r"^CustomVpcRestrictDefaultSGCustomResourceProviderHandler[0-9A-F]{8}$", check): NEW_VPC
    for check in CDK_LAMBDA
} | {
    ("Storage", r"^BucketAccessLogs[0-9A-F]{8}$", "CKV_AWS_18"): "all",
    ("Service", r"^SeedRunnerFunction[0-9A-F]{8}$", "CKV_AWS_117"): "all",
    ("Service", r"^NotifierFunction[0-9A-F]{8}$", "CKV_AWS_117"): "all",
    # Reserved concurrency is off by default (setting lambda_reserved_concurrency): fresh accounts cannot reserve.
    ("Service", r"^SeedRunnerFunction[0-9A-F]{8}$", "CKV_AWS_115"): "all",
    ("Service", r"^NotifierFunction[0-9A-F]{8}$", "CKV_AWS_115"): "all",
} | {
    ("Service", r"^AWS679f53fac002430cb0da5b7982bd2287[0-9A-F]{8}$", check): {"efs"} for check in CDK_LAMBDA
} | {
    ("Service", rf"^{app}IngressLoadBalancerHttp[0-9A-F]{{8}}$", check): {config}
    for app, config in (("Demo", "internal-ingress"), ("Maskterial", "two-apps"))
    for check in ("CKV_AWS_2", "CKV_AWS_103")
} | {
    # security groups' logical ids end in a replacement fingerprint (stacks/replacement.py)
    ("Service", rf"^{app}IngressSecurityGroup[0-9A-F]{{8}}[0-9A-F]{{8}}$", "CKV_AWS_260"): configs
    for app, configs in (("Demo", {"public-https", "deploy-access-reuse"}), ("Ocr", {"two-apps"}))
}


@pytest.fixture(scope="module")
def ingress_built() -> dict[str, Built]:
    return {name: Built(overrides) for name, overrides in INGRESS.items()}


@pytest.fixture(scope="module")
def scanned(s3_built, efs_built, prod_built, s3files_built, ingress_built, access_built, access_reuse_built,
            tmp_path_factory) -> tuple[dict, dict]:
    folder = tmp_path_factory.mktemp("templates")
    configs = {"s3": s3_built, "efs": efs_built, "prod-ecr": prod_built, "s3files": s3files_built, **ingress_built,
               "deploy-access": access_built, "deploy-access-reuse": access_reuse_built}  # with DeployAccess
    templates = {}
    for config, built in configs.items():
        for stack, template in built.templates().items():
            templates[(config, stack)] = template
            (folder / f"{config}-{stack}.template.json").write_text(json.dumps(template))
    return run_checkov(folder), templates


def metadata_skips(templates: dict) -> set[tuple[str, str, str, str]]:
    """(configuration, stack, logical id, check id) of every checkov skip written into the templates."""
    return {(config, stack, logical, skip["id"])
            for (config, stack), template in templates.items()
            for logical, resource in template["Resources"].items()
            for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", [])}


def test_every_template_passes_checkov(scanned):
    report, templates = scanned
    assert failures(report) == []
    assert report["summary"]["passed"] > 500  # it really scanned: every stack of every configuration
    assert report["summary"]["resource_count"] >= sum(len(t["Resources"]) for t in templates.values())


def test_every_skip_is_expected_and_has_a_reason(scanned):
    report, templates = scanned
    found = metadata_skips(templates)
    unexpected = [s for s in found if not any(
        s[1] == stack and re.match(pattern, s[2]) and s[3] == check and (where == "all" or s[0] in where)
        for (stack, pattern, check), where in EXPECTED_SKIPS.items())]
    assert unexpected == [], "a new checkov skip: fix the resource, or add it to EXPECTED_SKIPS with its reason"
    for (stack, pattern, check), where in EXPECTED_SKIPS.items():
        configs = set(templates_configs(templates)) if where == "all" else where
        for config in configs:
            assert any(s[:2] == (config, stack) and re.match(pattern, s[2]) and s[3] == check for s in found), \
                f"expected skip {check} on {pattern} in {config}-{stack} is gone: remove it from EXPECTED_SKIPS"
    for template in templates.values():
        for resource in template["Resources"].values():
            for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
                assert len(skip["comment"]) > 40, skip  # a reason, not a placeholder
    # checkov read every one of them (the Metadata form is the one it honours) and skipped nothing else.
    assert skipped(report) == {(f"{c}-{s}.template.json", logical, check) for c, s, logical, check in found}


def templates_configs(templates: dict) -> list[str]:
    return sorted({config for config, _ in templates})


def test_the_deploy_access_stack_is_scanned_with_the_iam_and_oidc_checks(scanned):
    report, _ = scanned
    for config in ("deploy-access", "deploy-access-reuse"):
        checks = {c["check_id"] for c in report["results"]["passed_checks"]
                  if c["file_path"].endswith(f"{config}-DeployAccess.template.json")}
        # credentials exposure, exfiltration, permissions management, privilege escalation, write access without
        # constraints (107-111), assume-role from anywhere (60, 61), no admin or "*" action (40, 62, 63). checkov
        # 3.3.30 has no CloudFormation check of GitHub OIDC trust claims: test_deploy_access.py asserts those.
        assert {f"CKV_AWS_{n}" for n in (40, 60, 61, 62, 63, 107, 108, 109, 110, 111)} <= checks, sorted(checks)


def test_checkov_reports_problems_and_honours_a_metadata_skip(tmp_path):
    # The checks above must be able to fail: a bare Lambda function fails the controls our functions pass,
    # and a Metadata skip (the form model_delivery/scanner.py writes) turns exactly that check into a skip.
    function = {"Type": "AWS::Lambda::Function",
                "Properties": {"Role": "arn:aws:iam::111111111111:role/r", "Runtime": "python3.14",
                               "Handler": "handler.handler", "Code": {"ZipFile": "def handler(e, c): pass"},
                               "Environment": {"Variables": {"A": "b"}}}}
    skipped_one = {**function, "Metadata": {"checkov": {"skip": [{"id": "CKV_AWS_117", "comment": "a test"}]}}}
    (tmp_path / "bad.template.json").write_text(json.dumps({"Resources": {"Bare": function, "Skipping": skipped_one}}))
    report = run_checkov(tmp_path)
    failed = {(c["resource"], c["check_id"]) for c in report["results"]["failed_checks"]}
    for check in ("CKV_AWS_115", "CKV_AWS_116", "CKV_AWS_117", "CKV_AWS_173"):
        assert ("AWS::Lambda::Function.Bare", check) in failed
    assert ("AWS::Lambda::Function.Skipping", "CKV_AWS_117") not in failed
    assert skipped(report) == {("bad.template.json", "Skipping", "CKV_AWS_117")}
