"""Builders for the CDK tests (fixtures in conftest.py build each App once per test module).

Apps here load cdk.json's context (feature flags and the `model-delivery` settings), use a fixed
environment and the fixture catalog, and carry no cdk-nag plugin (test_nag.py checks nag on its own),
so Template.from_stack never fails on a finding.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).resolve().parents[2]
if str(PROJECT) not in sys.path:  # `stacks` is a top-level package of the project, like app.py sees it
    sys.path.insert(0, str(PROJECT))

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
os.environ.setdefault("CDK_DISABLE_VERSION_CHECK", "true")

import aws_cdk as cdk  # noqa: E402  (after the jsii environment above)
from aws_cdk.assertions import Template  # noqa: E402

from stacks.assembly import StageStacks, build  # noqa: E402
from model_delivery.seeding import SEED_RUNNER_DIR  # noqa: E402
from stacks.settings import Settings, load_settings  # noqa: E402

FIXTURES = Path(__file__).resolve().parent / "fixtures"
FIXTURE_CATALOG = FIXTURES / "catalog.yaml"
FIXTURE_CONTAINER = FIXTURES / "container"
ACCOUNT, REGION = "111111111111", "eu-west-1"
ENVIRON = {"CDK_DEFAULT_ACCOUNT": ACCOUNT, "CDK_DEFAULT_REGION": REGION}
# What `cdk synth` with credentials caches in cdk.context.json; without it CDK invents dummy AZ names.
AZ_CONTEXT = {
    f"availability-zones:account={account}:region={REGION}": [f"{REGION}a", f"{REGION}b", f"{REGION}c"]
    for account in (ACCOUNT, "123456789012")  # the second: cdk.json's stage `example`
}



def readme_json_blocks(section: str) -> list[Any]:
    """The ```json blocks of one `## section` of the README (its worked examples, synthesized by the tests)."""
    text = (PROJECT / "README.md").read_text()
    body = text.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    return [json.loads(block) for block in re.findall(r"```json\n(.*?)\n```", body, flags=re.S)]


# The README's s3files app ("Delivery modes"), beside the demo app in s3 mode.
S3FILES_APP = readme_json_blocks("Delivery modes")[0]
# The configurations the stack tests cover: the default (the demo app in s3 mode) and efs delivery, prod with an
# ECR tag, the README's two apps on one store (cdk.json's stage `example`) and its app that mounts the bucket.
CONFIGS: dict[str, dict[str, str]] = {
    "s3": {},
    "efs": {"apps.demo.delivery_mode": "efs", "seed_on_deploy": "true"},
    "prod-ecr": {"stage": "prod", "image_source": "ecr", "image_tag": "v1.2.3"},
    "internal-ingress": {"apps.demo.ingress": "internal"},  # test_nag's acknowledgment check only
    "two-apps": {"stage": "example"},
    "s3files": {"apps": json.dumps({"seg": S3FILES_APP, "demo": {}})},
}
PUBLIC_SUBNETS = ["subnet-0aaaaaaaaaaaaaaa1", "subnet-0aaaaaaaaaaaaaaa2"]
PRIVATE_SUBNETS = ["subnet-0bbbbbbbbbbbbbbb1", "subnet-0bbbbbbbbbbbbbbb2"]


def lookup_answer(vpc_id: str, private: list[str] = PRIVATE_SUBNETS) -> dict:
    """What `cdk synth` with credentials caches in cdk.context.json for Vpc.from_lookup."""
    def subnets(ids: list[str], third_octet: int) -> list[dict]:
        return [{"subnetId": subnet, "cidr": f"10.1.{third_octet + i}.0/24", "availabilityZone": f"eu-west-1{az}",
                 "routeTableId": f"rtb-0{third_octet + i:016x}"} for i, (subnet, az) in enumerate(zip(ids, "ab"))]

    key = (f"vpc-provider:account=111111111111:filter.vpc-id={vpc_id}:region=eu-west-1:"
           "returnAsymmetricSubnets=true")
    return {key: {"vpcId": vpc_id, "vpcCidrBlock": "10.1.0.0/16", "ownerAccountId": "111111111111",
                  "availabilityZones": [],
                  "subnetGroups": [{"name": "Public", "type": "Public", "subnets": subnets(PUBLIC_SUBNETS, 0)},
                                   {"name": "Private", "type": "Private", "subnets": subnets(private, 10)}]}}


# The deploy-access stack (setting deploy_access): on the default stage, creating the provider; and reusing the
# account's provider, with its own environment, a custom bootstrap qualifier, an existing VPC, a certificate and an
# app image in another account's ECR repository (each adds what preflight then calls).
GITHUB_REPOSITORY = "My-Org/model.delivery"
DEPLOY_ACCESS: dict[str, dict[str, str]] = {
    "deploy-access": {"deploy_access": "true", "github_repository": GITHUB_REPOSITORY},
    "deploy-access-reuse": {
        "deploy_access": "true",
        "github_repository": GITHUB_REPOSITORY,
        "github_environment": "production",
        "github_oidc_provider_arn": f"arn:aws:iam::{ACCOUNT}:oidc-provider/token.actions.githubusercontent.com",
        "@aws-cdk/core:bootstrapQualifier": "team42",
        "apps.demo.image": "222222222222.dkr.ecr.us-east-1.amazonaws.com/team/app:v1",
        "apps.demo.ingress": "public",
        "apps.demo.health_path": "/health",
        "apps.demo.certificate_arn": f"arn:aws:acm:{REGION}:{ACCOUNT}:certificate/0a1b2c3d-4e5f-6789-abcd-ef0123456789",
        "vpc_id": "vpc-0123456789abcdef0",
        **lookup_answer("vpc-0123456789abcdef0"),
    },
}
DEMO = "Demo"  # the demo app's part of logical ids (stacks.naming.app_id("demo"))


def cdk_json_context() -> dict[str, Any]:
    return json.loads((PROJECT / "cdk.json").read_text())["context"]


def settings_for(overrides: dict[str, Any], catalog: Path = FIXTURE_CATALOG) -> Settings:
    """Settings as `cdk synth -c key=value ...` would build them (overrides arrive as strings)."""
    context = {**cdk_json_context(), **overrides}
    return load_settings(context, environ=ENVIRON, catalog_path=catalog)


def build_app(overrides: dict[str, Any], outdir: Path | None = None, container_dir: Path = FIXTURE_CONTAINER,
              seed_runner_dir: Path = SEED_RUNNER_DIR,
              catalog: Path = FIXTURE_CATALOG) -> tuple[cdk.App, StageStacks]:
    context = {**cdk_json_context(), **AZ_CONTEXT, **overrides}
    app = cdk.App(context=context, outdir=str(outdir) if outdir else None)
    settings = load_settings(app.node.get_all_context(), environ=ENVIRON, catalog_path=catalog)
    return app, build(app, settings, container_dir=container_dir, seed_runner_dir=seed_runner_dir)


class Built:
    """One synthesized configuration: templates as assertion Templates and as plain JSON."""

    def __init__(self, overrides: dict[str, Any], catalog: Path = FIXTURE_CATALOG) -> None:
        self.app, self.delivery = build_app(overrides, catalog=catalog)
        self.network = Template.from_stack(self.delivery.network)
        self.storage = Template.from_stack(self.delivery.storage)
        self.service = Template.from_stack(self.delivery.service)
        access = self.delivery.deploy_access
        self.deploy_access = Template.from_stack(access) if access is not None else None

    def templates(self) -> dict[str, dict]:
        """Every stack's template; DeployAccess only where the configuration enables it."""
        found = {"Network": self.network.to_json(), "Storage": self.storage.to_json(),
                 "Service": self.service.to_json()}
        if self.deploy_access is not None:
            found["DeployAccess"] = self.deploy_access.to_json()
        return found


def resources(template: Template, type_: str) -> dict[str, dict]:
    return template.find_resources(type_)


def only(template: Template, type_: str) -> dict:
    found = list(resources(template, type_).values())
    assert len(found) == 1, f"expected exactly one {type_}, found {len(found)}"
    return found[0]


def logical_id(template: Template, type_: str, pattern: str) -> str:
    """The one logical id of `type_` matching `pattern` (construct ids are part of logical ids)."""
    ids = [key for key in resources(template, type_) if re.search(pattern, key)]
    assert len(ids) == 1, f"expected one {type_} matching {pattern!r}, found {ids}"
    return ids[0]


def statements(built: Built, role_pattern: str) -> list[dict]:
    """Every statement a role gets, wherever it lives (the service stack's task and function roles, the storage
    stack's seeding and signing roles): its inline policies, the managed policies it lists (followed through the
    stack outputs) and the managed policies that name it."""
    storage = built.storage
    published = {name: output["Value"] for name, output in storage.find_outputs("*").items()}
    for template in (built.service, storage):
        ids = [key for key in resources(template, "AWS::IAM::Role") if re.search(role_pattern, key)]
        if ids:
            break
    assert len(ids) == 1, f"expected one role matching {role_pattern!r}, found {ids}"
    role_id, found = ids[0], []
    for type_ in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
        for policy in resources(template, type_).values():
            if {"Ref": role_id} in policy["Properties"].get("Roles", []):
                found.extend(policy["Properties"]["PolicyDocument"]["Statement"])
    managed = resources(storage, "AWS::IAM::ManagedPolicy")
    for arn in resources(template, "AWS::IAM::Role")[role_id]["Properties"].get("ManagedPolicyArns", []):
        policy_id = published[arn["Fn::GetStackOutput"]["OutputName"]]["Ref"]
        found.extend(managed[policy_id]["Properties"]["PolicyDocument"]["Statement"])
    assert found, f"role {role_id} has no policy"
    return found


def actions(statement_list: list[dict]) -> set[str]:
    result: set[str] = set()
    for statement in statement_list:
        acts = statement["Action"]
        result.update([acts] if isinstance(acts, str) else acts)
    return result


def task_definition(t: Template, pattern: str) -> dict:
    return resources(t, "AWS::ECS::TaskDefinition")[logical_id(t, "AWS::ECS::TaskDefinition", pattern)]["Properties"]


def containers(t: Template, pattern: str) -> dict[str, dict]:
    return {c["Name"]: c for c in task_definition(t, pattern)["ContainerDefinitions"]}


def env(container: dict) -> dict[str, object]:
    return {item["Name"]: item["Value"] for item in container.get("Environment", [])}


def mounts(container: dict) -> dict[str, tuple[str, bool]]:
    return {m["ContainerPath"]: (m["SourceVolume"], m["ReadOnly"]) for m in container["MountPoints"]}


def storage_value(built: Built, value) -> object:
    """What a service-stack value is in the storage stack (follows Fn::GetStackOutput)."""
    name = value["Fn::GetStackOutput"]["OutputName"]
    return built.storage.to_json()["Outputs"][name]["Value"]
