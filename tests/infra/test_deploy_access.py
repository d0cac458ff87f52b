"""The deploy-access stack (setting deploy_access, stacks/deploy_access.py): only when enabled, outside `--all`,
the three stage stacks unchanged by it; every trust and permission statement of both roles written out here and
compared exactly; cdk-nag and cfn-lint clean (checkov: test_checkov.py scans it with the other templates)."""

from __future__ import annotations

import copy
import json
import subprocess

import pytest
from aws_cdk.assertions import Match, Template
from cdk_nag import AwsSolutionsChecks

import model_delivery.nag
from stacks.assembly import enable_nag
from stacks.errors import SettingsError

from .helpers import ACCOUNT, DEPLOY_ACCESS, GITHUB_REPOSITORY, PROJECT, REGION, build_app, resources, settings_for
from .test_cfn_lint import CFN_LINT, IGNORED

PROVIDER_ARN = f"arn:aws:iam::{ACCOUNT}:oidc-provider/token.actions.githubusercontent.com"
HOST = "token.actions.githubusercontent.com"


def role_id(template: Template, description_start: str) -> str:
    (found,) = [key for key, role in resources(template, "AWS::IAM::Role").items()
                if role["Properties"]["Description"].startswith(description_start)]
    return found


def deploy_role(template: Template) -> str:
    return role_id(template, "deploy.yml: make up")


def diff_role(template: Template) -> str:
    return role_id(template, "deploy.yml: cdk diff")


def policy_statements(template: Template, role: str) -> list[dict]:
    """Every permission statement the role gets (its inline policies; it has no managed policy)."""
    properties = resources(template, "AWS::IAM::Role")[role]["Properties"]
    assert "ManagedPolicyArns" not in properties and "Policies" not in properties
    return [statement for policy in resources(template, "AWS::IAM::Policy").values()
            if {"Ref": role} in policy["Properties"]["Roles"]
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]]


def trust(template: Template, role: str) -> list[dict]:
    return resources(template, "AWS::IAM::Role")[role]["Properties"]["AssumeRolePolicyDocument"]["Statement"]


def expected_trust(federated, sub: str) -> list[dict]:
    return [{"Action": "sts:AssumeRoleWithWebIdentity", "Effect": "Allow", "Principal": {"Federated": federated},
             "Condition": {"StringEquals": {f"{HOST}:aud": "sts.amazonaws.com", f"{HOST}:sub": sub}}}]


def check_trust(statements: list[dict], federated, sub: str) -> None:
    """Exactly one statement: GitHub's provider, StringEquals on aud and sub, no wildcard anywhere in the sub."""
    assert statements == expected_trust(federated, sub)
    for statement in statements:
        assert set(statement["Condition"]) == {"StringEquals"}
        assert not any(c in statement["Condition"]["StringEquals"][f"{HOST}:sub"] for c in "*?")


def arn(service: str, resource: str, region: str = REGION) -> str:
    return f"arn:aws:{service}:{region}:{ACCOUNT}:{resource}"


def bootstrap_role(purpose: str, qualifier: str = "hnb659fds") -> str:
    return f"arn:aws:iam::{ACCOUNT}:role/cdk-{qualifier}-{purpose}-role-{ACCOUNT}-{REGION}"


BUCKET = "arn:aws:s3:::modeldelivery-dev-storage-*"


def expected_deploy_statements(qualifier: str = "hnb659fds") -> list[dict]:
    """The deploy role of stage dev (account 111111111111, eu-west-1), statement by statement."""
    service = "ModelDelivery-dev-Service"
    return [
        {"Sid": "AssumeCdkBootstrapRoles", "Effect": "Allow", "Action": "sts:AssumeRole",
         "Resource": [bootstrap_role(purpose, qualifier)
                      for purpose in ("deploy", "file-publishing", "image-publishing", "lookup")]},
        {"Sid": "ReadStageStacks", "Effect": "Allow", "Action": "cloudformation:DescribeStacks",
         "Resource": [arn("cloudformation", "stack/CDKToolkit/*"), arn("cloudformation", f"stack/{service}/*"),
                      arn("cloudformation", "stack/ModelDelivery-dev-Storage/*")]},
        {"Sid": "ListServiceStackResources", "Effect": "Allow", "Action": "cloudformation:ListStackResources",
         "Resource": arn("cloudformation", f"stack/{service}/*")},
        {"Sid": "ReadBootstrapVersion", "Effect": "Allow", "Action": "ssm:GetParameter",
         "Resource": arn("ssm", f"parameter/cdk-bootstrap/{qualifier}/version")},
        {"Sid": "CheckServiceLinkedRoles", "Effect": "Allow", "Action": "iam:GetRole",
         "Resource": [f"arn:aws:iam::{ACCOUNT}:role/aws-service-role/ecs.amazonaws.com/AWSServiceRoleForECS",
                      f"arn:aws:iam::{ACCOUNT}:role/aws-service-role/ecs.application-autoscaling.amazonaws.com/"
                      "AWSServiceRoleForApplicationAutoScaling_ECSService"]},
        {"Sid": "ServiceStackFunctions", "Effect": "Allow",
         "Action": ["lambda:GetFunctionConcurrency", "lambda:InvokeFunction"],
         "Resource": arn("lambda", f"function:{service}-*")},
        {"Sid": "FollowSeedLogs", "Effect": "Allow", "Action": "logs:GetLogEvents",
         "Resource": [arn("logs", f"log-group:/model-delivery/dev/{service}/Seeding/Logs:log-stream:*"),
                      arn("logs", f"log-group:/model-delivery/dev/{service}/Signing/Logs:log-stream:*")]},
        {"Sid": "WatchStageTasks", "Effect": "Allow", "Action": ["ecs:DescribeServices", "ecs:DescribeTasks"],
         "Resource": [arn("ecs", f"service/{service}-*/*"), arn("ecs", f"task/{service}-*/*")]},
        {"Sid": "ListStageTasks", "Effect": "Allow", "Action": "ecs:ListTasks", "Resource": "*",
         "Condition": {"ArnLike": {"ecs:cluster": arn("ecs", f"cluster/{service}-*")}}},
        {"Sid": "ReadModelPointers", "Effect": "Allow", "Action": "s3:GetObject",
         "Resource": [f"{BUCKET}/models/*/*/manifest.json", f"{BUCKET}/models/*/LATEST"]},
        {"Sid": "ListModelsPrefix", "Effect": "Allow", "Action": "s3:ListBucket", "Resource": BUCKET,
         "Condition": {"StringLike": {"s3:prefix": ["models/", "models/*"]}}},
        {"Sid": "DecryptModelPointersViaS3", "Effect": "Allow", "Action": "kms:Decrypt",
         "Resource": arn("kms", "key/*"),
         "Condition": {"StringEquals": {"kms:ViaService": f"s3.{REGION}.amazonaws.com"},
                       "ArnLike": {"kms:EncryptionContext:aws:s3:arn": BUCKET}}},
        {"Sid": "ReadQuotas", "Effect": "Allow", "Action": "servicequotas:GetServiceQuota",
         "Resource": [arn("servicequotas", "elasticfilesystem/L-848C634D"),
                      arn("servicequotas", "elasticloadbalancing/L-53DA6B97"),
                      arn("servicequotas", "fargate/L-3032A538")]},
        {"Sid": "ReadAccountLimits", "Effect": "Allow", "Resource": "*",
         "Action": ["elasticfilesystem:DescribeFileSystems", "elasticloadbalancing:DescribeLoadBalancers",
                    "lambda:GetAccountSettings", "servicequotas:GetAWSDefaultServiceQuota"]},
        {"Sid": "DescribeImages", "Effect": "Allow", "Action": "ecr:DescribeImages",
         "Resource": arn("ecr", "repository/modeldelivery-dev-storage-*")},
    ]


# ---- only when enabled, outside --all, nothing else changed ------------------------------------------------------

def test_off_by_default_there_is_no_deploy_access_stack(s3_built):
    assert s3_built.delivery.deploy_access is None
    assembly = s3_built.app.synth()
    assert [s.stack_name for s in assembly.stacks_recursively] == [
        "ModelDelivery-dev-Network", "ModelDelivery-dev-Storage", "ModelDelivery-dev-Service"]


def test_enabled_it_is_a_nested_stack_that_deploy_all_and_up_never_select(access_built):
    assembly = access_built.app.synth()
    # `cdk deploy --all` and `cdk diff` without names select the top-level stacks only (aws-cdk CLI: MAIN_ASSEMBLY).
    assert [s.stack_name for s in assembly.stacks] == [
        "ModelDelivery-dev-Network", "ModelDelivery-dev-Storage", "ModelDelivery-dev-Service"]
    top = {s.stack_name for s in assembly.stacks}
    (access,) = [s for s in assembly.stacks_recursively if s.stack_name not in top]
    assert access.stack_name == "ModelDelivery-dev-DeployAccess"
    # make deploy-access names it the way the CLI matches it: by its display name.
    dry = subprocess.run(["make", "--no-print-directory", "-n", "deploy-access", "STAGE=dev"], cwd=PROJECT,
                         capture_output=True, text=True, timeout=60).stdout.strip().splitlines()[-1]
    assert f"cdk deploy '{access.hierarchical_id}' -c stage=dev" in dry
    assert access.hierarchical_id == "DeployAccess/ModelDelivery-dev-DeployAccess"


def test_the_three_stage_stacks_are_the_same_with_it_enabled(s3_built, access_built):
    on, off = access_built.templates(), s3_built.templates()
    assert set(on) == {"Network", "Storage", "Service", "DeployAccess"}
    for stack in ("Network", "Storage", "Service"):
        assert on[stack] == off[stack], stack


def test_it_carries_the_stage_tags(access_built):
    for role in resources(access_built.deploy_access, "AWS::IAM::Role").values():
        assert {"Key": "stage", "Value": "dev"} in role["Properties"]["Tags"]


# ---- trust ---------------------------------------------------------------------------------------------------

def test_it_creates_githubs_provider_for_sts_only(access_built):
    (provider,) = resources(access_built.deploy_access, "AWS::IAM::OIDCProvider").values()
    assert {k: v for k, v in provider["Properties"].items() if k != "Tags"} == {
        "Url": f"https://{HOST}", "ClientIdList": ["sts.amazonaws.com"]}  # no thumbprint: IAM trusts GitHub's CA


def test_the_deploy_role_trusts_one_repositorys_stage_environment_only(access_built):
    t = access_built.deploy_access
    (provider,) = resources(t, "AWS::IAM::OIDCProvider")
    check_trust(trust(t, deploy_role(t)), {"Ref": provider}, f"repo:{GITHUB_REPOSITORY}:environment:dev")
    assert resources(t, "AWS::IAM::Role")[deploy_role(t)]["Properties"]["MaxSessionDuration"] == 7200


def test_the_diff_role_trusts_the_repositorys_pull_requests_only(access_built):
    t = access_built.deploy_access
    (provider,) = resources(t, "AWS::IAM::OIDCProvider")
    check_trust(trust(t, diff_role(t)), {"Ref": provider}, f"repo:{GITHUB_REPOSITORY}:pull_request")


def test_an_existing_provider_is_trusted_instead_of_creating_one(access_reuse_built):
    t = access_reuse_built.deploy_access
    assert resources(t, "AWS::IAM::OIDCProvider") == {}
    check_trust(trust(t, deploy_role(t)), PROVIDER_ARN, f"repo:{GITHUB_REPOSITORY}:environment:production")
    check_trust(trust(t, diff_role(t)), PROVIDER_ARN, f"repo:{GITHUB_REPOSITORY}:pull_request")


@pytest.mark.parametrize("tamper", [
    lambda s: s["Condition"]["StringEquals"].update({f"{HOST}:sub": f"repo:{GITHUB_REPOSITORY}:*"}),
    lambda s: s["Condition"].update({"StringLike": s["Condition"].pop("StringEquals")}),
    lambda s: s["Condition"]["StringEquals"].pop(f"{HOST}:aud"),
    lambda s: s.update({"Principal": {"Federated": "arn:aws:iam::222222222222:oidc-provider/" + HOST}}),
])
def test_the_trust_check_fails_on_a_wider_trust(access_built, tamper):
    t = access_built.deploy_access
    (provider,) = resources(t, "AWS::IAM::OIDCProvider")
    statements = copy.deepcopy(trust(t, deploy_role(t)))
    tamper(statements[0])
    with pytest.raises(AssertionError):
        check_trust(statements, {"Ref": provider}, f"repo:{GITHUB_REPOSITORY}:environment:dev")


# ---- permissions ----------------------------------------------------------------------------------------------

def test_every_deploy_role_statement_exactly(access_built):
    t = access_built.deploy_access
    assert policy_statements(t, deploy_role(t)) == expected_deploy_statements()


def test_the_statement_check_fails_on_a_wider_policy(access_built):
    t = access_built.deploy_access
    wider = copy.deepcopy(policy_statements(t, deploy_role(t)))
    wider[0]["Resource"] = f"arn:aws:iam::{ACCOUNT}:role/cdk-*"
    assert wider != expected_deploy_statements()


def test_the_bootstrap_roles_are_exactly_those_of_the_qualifier_account_and_region(access_reuse_built):
    t = access_reuse_built.deploy_access
    (assume,) = [s for s in policy_statements(t, deploy_role(t)) if s["Sid"] == "AssumeCdkBootstrapRoles"]
    assert assume["Resource"] == [
        f"arn:aws:iam::{ACCOUNT}:role/cdk-team42-{purpose}-role-{ACCOUNT}-{REGION}"
        for purpose in ("deploy", "file-publishing", "image-publishing", "lookup")]


def test_what_the_settings_name_is_granted_exactly(access_reuse_built):
    """An existing VPC, a certificate and an app image in another ECR repository: what preflight then describes."""
    t = access_reuse_built.deploy_access
    statements = policy_statements(t, deploy_role(t))
    base = {s["Sid"]: s for s in expected_deploy_statements("team42")}
    by_sid = {s["Sid"]: s for s in statements}
    assert by_sid.pop("DescribeImages") == {**base.pop("DescribeImages"), "Resource": [
        arn("ecr", "repository/modeldelivery-dev-storage-*"), "arn:aws:ecr:us-east-1:222222222222:repository/team/app"]}
    assert by_sid.pop("DescribeCertificates") == {
        "Sid": "DescribeCertificates", "Effect": "Allow", "Action": "acm:DescribeCertificate",
        "Resource": arn("acm", "certificate/0a1b2c3d-4e5f-6789-abcd-ef0123456789")}
    assert by_sid.pop("DescribeStageVpc") == {
        "Sid": "DescribeStageVpc", "Effect": "Allow", "Resource": "*",
        "Action": ["ec2:DescribeRouteTables", "ec2:DescribeSubnets", "ec2:DescribeVpcEndpoints", "ec2:DescribeVpcs"],
        "Condition": {"StringEquals": {"aws:RequestedRegion": REGION}}}
    assert by_sid == base


def test_the_diff_role_may_only_assume_the_lookup_role(access_built, access_reuse_built):
    for built, qualifier in ((access_built, "hnb659fds"), (access_reuse_built, "team42")):
        t = built.deploy_access
        assert policy_statements(t, diff_role(t)) == [
            {"Sid": "AssumeCdkLookupRole", "Effect": "Allow", "Action": "sts:AssumeRole",
             "Resource": bootstrap_role("lookup", qualifier)}]


# ---- the same, through aws_cdk.assertions (Template + Match) ---------------------------------------------------

def assert_roles_with_match(t: Template, federated, environment: str, deploy_statements: list[dict],
                            qualifier: str) -> None:
    """Both roles, their trust and their single inline policy each, matched exactly (Match.exact: no extra
    statement, key or list item is tolerated)."""
    t.resource_count_is("AWS::IAM::Role", 2)
    t.resource_count_is("AWS::IAM::Policy", 2)
    t.resource_count_is("AWS::IAM::ManagedPolicy", 0)
    subjects = {"deploy.yml: make up": f"repo:{GITHUB_REPOSITORY}:environment:{environment}",
                "deploy.yml: cdk diff": f"repo:{GITHUB_REPOSITORY}:pull_request"}
    for description, sub in subjects.items():
        t.has_resource_properties("AWS::IAM::Role", {
            "Description": Match.string_like_regexp(f"^{description}"),
            "AssumeRolePolicyDocument": Match.exact(
                {"Version": "2012-10-17", "Statement": expected_trust(federated, sub)}),
            "ManagedPolicyArns": Match.absent(),
            "Policies": Match.absent(),
        })
    t.has_resource_properties("AWS::IAM::Policy", {
        "Roles": Match.exact([{"Ref": deploy_role(t)}]),
        "PolicyDocument": Match.exact({"Version": "2012-10-17", "Statement": deploy_statements}),
    })
    t.has_resource_properties("AWS::IAM::Policy", {
        "Roles": Match.exact([{"Ref": diff_role(t)}]),
        "PolicyDocument": Match.exact({"Version": "2012-10-17", "Statement": [
            {"Sid": "AssumeCdkLookupRole", "Effect": "Allow", "Action": "sts:AssumeRole",
             "Resource": bootstrap_role("lookup", qualifier)}]}),
    })


def test_trust_and_permissions_through_template_and_match(access_built):
    t = access_built.deploy_access
    (provider,) = resources(t, "AWS::IAM::OIDCProvider")
    t.has_resource_properties("AWS::IAM::OIDCProvider", Match.exact({
        "Url": f"https://{HOST}", "ClientIdList": ["sts.amazonaws.com"], "Tags": Match.any_value()}))
    assert_roles_with_match(t, {"Ref": provider}, "dev", expected_deploy_statements(), "hnb659fds")


def test_the_reused_provider_through_template_and_match(access_reuse_built):
    t = access_reuse_built.deploy_access
    t.resource_count_is("AWS::IAM::OIDCProvider", 0)
    by_sid = {s["Sid"]: s for s in policy_statements(t, deploy_role(t))}  # the extra statements: asserted above
    expected = [by_sid[s["Sid"]] if s["Sid"] == "DescribeImages" else s for s in expected_deploy_statements("team42")]
    expected += [by_sid["DescribeCertificates"], by_sid["DescribeStageVpc"]]
    assert_roles_with_match(t, PROVIDER_ARN, "production", expected, "team42")


@pytest.mark.parametrize("tamper", [
    # the deploy role's sub widened to the whole repository
    lambda roles, _: roles[0]["AssumeRolePolicyDocument"]["Statement"][0]["Condition"]["StringEquals"].update(
        {f"{HOST}:sub": f"repo:{GITHUB_REPOSITORY}:*"}),
    # a second trust statement on the diff role
    lambda roles, _: roles[1]["AssumeRolePolicyDocument"]["Statement"].append(
        {"Action": "sts:AssumeRole", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}}),
    # one more action on the deploy role
    lambda _, policies: policies[0]["PolicyDocument"]["Statement"][0].update(
        {"Action": ["sts:AssumeRole", "sts:TagSession"]}),
    # the diff role may assume the deploy role too
    lambda _, policies: policies[1]["PolicyDocument"]["Statement"][0].update(
        {"Resource": [bootstrap_role("lookup"), bootstrap_role("deploy")]}),
])
def test_the_match_assertions_fail_on_a_wider_template(access_built, tamper):
    t = access_built.deploy_access
    (provider,) = resources(t, "AWS::IAM::OIDCProvider")
    template = copy.deepcopy(t.to_json())
    by_type = {kind: [r["Properties"] for r in template["Resources"].values() if r["Type"] == kind]
               for kind in ("AWS::IAM::Role", "AWS::IAM::Policy")}
    roles = sorted(by_type["AWS::IAM::Role"], key=lambda r: not r["Description"].startswith("deploy.yml: make up"))
    policies = sorted(by_type["AWS::IAM::Policy"], key=lambda p: p["Roles"] != [{"Ref": deploy_role(t)}])
    tamper(roles, policies)
    with pytest.raises(Exception, match="none match as expected"):
        assert_roles_with_match(Template.from_json(template), {"Ref": provider}, "dev",
                                expected_deploy_statements(), "hnb659fds")


def test_no_static_credentials_and_the_role_arns_are_outputs(access_built):
    t = access_built.deploy_access
    text = json.dumps(t.to_json())
    assert "AWS::IAM::AccessKey" not in text and "AWS::IAM::User" not in text
    outputs = t.find_outputs("*")
    assert outputs["DeployRoleArn"]["Value"] == {"Fn::GetAtt": [deploy_role(t), "Arn"]}
    assert outputs["DiffRoleArn"]["Value"] == {"Fn::GetAtt": [diff_role(t), "Arn"]}


# ---- bad settings: one-line errors ------------------------------------------------------------------------------

ON = {"deploy_access": "true", "github_repository": GITHUB_REPOSITORY}


@pytest.mark.parametrize("overrides, problem", [
    ({"deploy_access": "true"}, "'github_repository' is required with deploy_access: true"),
    ({**ON, "github_repository": "my-org"}, "'github_repository' = 'my-org' is not allowed: use OWNER/NAME"),
    ({**ON, "github_repository": "my-org/*"}, "'github_repository' = 'my-org/*' is not allowed"),
    ({**ON, "github_repository": "repo:my-org/x"}, "'github_repository' = 'repo:my-org/x' is not allowed"),
    ({**ON, "github_environment": "prod*"}, "'github_environment' = 'prod*' is not allowed"),
    ({**ON, "github_environment": "prod:ref:refs/heads/main"}, "'github_environment' = 'prod:ref:refs/heads/main'"),
    ({**ON, "github_oidc_provider_arn": f"arn:aws:iam::{ACCOUNT}:oidc-provider/accounts.google.com"},
     "'github_oidc_provider_arn' = 'arn:aws:iam::111111111111:oidc-provider/accounts.google.com' is not allowed"),
    ({**ON, "github_oidc_provider_arn": f"arn:aws:iam::222222222222:oidc-provider/{HOST}"},
     "use the provider of the stage's account 111111111111"),
    ({**ON, "deploy_access": "yes"}, "'deploy_access' = 'yes' is not allowed: use true or false"),
])
def test_bad_settings_are_one_line_errors(overrides, problem):
    with pytest.raises(SettingsError) as caught:
        settings_for(overrides)
    message = str(caught.value)
    assert "\n" not in message and problem in message, message


def test_off_by_default_and_the_environment_defaults_to_the_stage():
    # the other side of the errors above: valid settings load
    assert settings_for({}).deploy_access.deploy_access is False
    assert settings_for(ON).deploy_access.environment("dev") == "dev"
    assert settings_for({**ON, "stage": "prod"}).deploy_access.environment("prod") == "prod"
    assert settings_for(DEPLOY_ACCESS["deploy-access-reuse"]).deploy_access.environment("dev") == "production"


# ---- scanners -------------------------------------------------------------------------------------------------

def test_nag_clean_and_the_app_synthesizes_with_nag_enforced(access_built, access_reuse_built, tmp_path):
    for built in (access_built, access_reuse_built):
        report = AwsSolutionsChecks().validate_scope(built.delivery.deploy_access)
        assert report.success, [v.rule_name for v in report.violations]
    app, _ = build_app(DEPLOY_ACCESS["deploy-access"], outdir=tmp_path)
    enable_nag(app)
    app.synth()  # the App's plugin reaches the nested stage: it raises on any unacknowledged finding
    assert (tmp_path / "assembly-DeployAccess").is_dir()


@pytest.mark.parametrize("finding", [":key/*]", "Resource::*]", ":log-stream:*]", "stack/CDKToolkit/*]"])
def test_removing_an_acknowledgment_brings_its_finding_back(monkeypatch, tmp_path, finding):
    real = model_delivery.nag.acknowledge
    dropped = []

    def all_but_one(construct, finding_id, reason):
        if finding_id.endswith(finding):
            dropped.append(finding_id)
            return
        real(construct, finding_id, reason)

    monkeypatch.setattr(model_delivery.nag, "acknowledge", all_but_one)
    app, delivery = build_app(DEPLOY_ACCESS["deploy-access"], outdir=tmp_path)
    assert dropped, f"no acknowledgment matches {finding!r}"
    violations = {v.rule_name for v in AwsSolutionsChecks().validate_scope(delivery.deploy_access).violations}
    assert violations == set(dropped)


def test_cfn_lint_clean(access_built, access_reuse_built, tmp_path):
    paths = []
    for name, built in (("access", access_built), ("reuse", access_reuse_built)):
        path = tmp_path / f"{name}.template.json"
        path.write_text(json.dumps(built.deploy_access.to_json()))
        paths.append(str(path))
    result = subprocess.run([CFN_LINT, "--format", "parseable", "--ignore-checks", *IGNORED, "--", *paths],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""
