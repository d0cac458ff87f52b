"""Serving your own apps: the README's worked configurations ("Serve your own apps"), synthesized exactly as
written there with the real catalog and cdk-nag (checkov scans the same stage in test_checkov.py), and the invariants they stand for: two apps from one
store (one bucket, one file system, one seeding task of the union of their models), each with its own image,
layout, pins, security group and load balancer; no modelsync in an app container, the init container on the
modelsync image, the view read-only at the app's path, ingress variants, rollback by pin."""

from __future__ import annotations

import json
import re

import pytest
from cdk_nag import AwsSolutionsChecks

from model_delivery.catalog import DEFAULT_CATALOG
from model_delivery.errors import ModelDeliveryError
from modelsync.layouts import load_layouts

from .helpers import (Built, cdk_json_context, containers, env, logical_id, mounts, readme_json_blocks, resources,
                      settings_for, task_definition)


def readme_examples() -> tuple[dict, dict]:
    """The JSON blocks of the README's "Serve your own apps" section: a stage with two apps, and one more app."""
    blocks = readme_json_blocks("Serve your own apps")
    assert len(blocks) == 2, "the README shows a two-app stage and one more app"
    return blocks[0], blocks[1]


STAGE_BLOCK, FLAKE_APP = readme_examples()
APPS = {"maskterial": "Maskterial", "ocr": "Ocr", "flake": "Flake"}  # app name -> its part of logical ids
SETTINGS = {name: {**STAGE_BLOCK["apps"], "flake": FLAKE_APP}[name] for name in APPS}


def test_the_readme_stage_is_cdk_json_s_example_stage():
    """One fact in one place: the README shows what `make synth STAGE=example` and `make local APPS=...` use."""
    assert cdk_json_context()["model-delivery"]["stages"]["example"] == STAGE_BLOCK


@pytest.fixture(scope="module")
def built() -> dict[str, Built]:
    two_apps = Built({"stage": "example"}, catalog=DEFAULT_CATALOG)
    flake = Built({"apps": json.dumps({"flake": FLAKE_APP})}, catalog=DEFAULT_CATALOG)
    return {"maskterial": two_apps, "ocr": two_apps, "flake": flake}


def task(app: str) -> str:
    return f"^{APPS[app]}TaskDefinition[0-9A-F]"


def app_and_init(b: Built, app: str) -> tuple[dict, dict]:
    c = containers(b.service, task(app))
    return c["app"], c["model-pull" if "model-pull" in c else "model-verify"]


def image_ref(container: dict) -> str:
    return json.dumps(container["Image"])


@pytest.mark.parametrize("app", ["maskterial", "flake"])
def test_every_readme_example_is_nag_clean(built, app):
    for stack in built[app].delivery.stacks:
        report = AwsSolutionsChecks().validate_scope(stack)
        assert report.success, [(v.rule_name, v.violating_resources) for v in report.violations]


def test_two_apps_share_one_bucket_one_file_system_and_one_seeding_task(built):
    b = built["maskterial"]
    assert len(resources(b.storage, "AWS::EFS::FileSystem")) == 1
    buckets = resources(b.storage, "AWS::S3::Bucket")
    assert len(buckets) == 2  # the models bucket and its access-log bucket
    assert len(resources(b.service, "AWS::ECS::Service")) == 2
    assert len(resources(b.service, "AWS::ECS::Cluster")) == 1
    seeding = [k for k in resources(b.service, "AWS::ECS::TaskDefinition") if k.startswith("SeedingTaskDefinition")]
    assert len(seeding) == 1
    seed = containers(b.service, "^SeedingTaskDefinition")["seed"]
    assert env(seed)["MODELSYNC_SEED_ONLY"] == (
        "SEG_M2F_Synthetic_Data,SEG_M2F_GrapheneL,CLS_AMM_GrapheneL,PP_L2_material_agnostic,paddleocr")
    assert len(resources(b.service, "AWS::SNS::Topic")) == 1 and len(resources(b.service, "AWS::CloudWatch::Dashboard")) == 1


@pytest.mark.parametrize("app, models", [
    ("maskterial", "SEG_M2F_Synthetic_Data,SEG_M2F_GrapheneL,CLS_AMM_GrapheneL,PP_L2_material_agnostic"),
    ("ocr", "paddleocr"),
    ("flake", "SEG_M2F_GrapheneL@3f9c1a7e5b2d4c60,CLS_AMM_GrapheneL"),
])
def test_each_app_has_its_own_models_layout_and_metrics_dimension(built, app, models):
    _, init = app_and_init(built[app], app)
    assert env(init)["MODELSYNC_MODELS"] == models
    layout = SETTINGS[app].get("layout", "flat")
    assert env(init)["MODELSYNC_LAYOUT"] == layout
    # The rules synth checked travel with the task definition (the image's own layouts file does not decide).
    assert json.loads(env(init)["MODELSYNC_LAYOUT_RULES"]) == load_layouts().get(layout).document()
    assert env(init)["MODELSYNC_APP"] == app and env(init)["MODELSYNC_STAGE"] in ("example", "dev")


@pytest.mark.parametrize("app", APPS)
def test_the_app_container_carries_nothing_of_modelsync(built, app):
    app_c, init = app_and_init(built[app], app)
    assert app_c.get("Command") == SETTINGS[app].get("command")  # none: the image's own CMD
    assert "modelsync" not in json.dumps(app_c.get("Command", [])) + json.dumps(app_c.get("HealthCheck", {}))
    assert not any(name.startswith("MODELSYNC_") for name in env(app_c))
    assert "User" not in app_c  # the image's own user
    assert app_c["ReadonlyRootFilesystem"] is True and mounts(app_c)["/tmp"] == ("app-tmp", False)
    assert app_c["PortMappings"] == [{"ContainerPort": SETTINGS[app]["port"], "Protocol": "tcp"}]
    # The init container is always the modelsync image (the asset built from container/).
    assert init["User"] == "10001:10001" and "cdk-hnb659fds-container-assets" in image_ref(init)
    assert image_ref(app_c) != image_ref(init)
    assert app_c["DependsOn"] == [{"ContainerName": init["Name"], "Condition": "SUCCESS"}]


def test_maskterial_sees_its_data_models_tree_from_the_project_repository(built):
    app, init = app_and_init(built["maskterial"], "maskterial")
    assert mounts(app)["/maskterial/data/models"] == ("model-view", True)  # read-only
    assert mounts(app)["/models"] == ("models", True)
    assert env(app) == {"HOME": "/tmp", "MPLCONFIGDIR": "/tmp/matplotlib"}  # the layout sets nothing
    # The storage stack's repository, named through its published output.
    repository = logical_id(built["maskterial"].storage, "AWS::ECR::Repository", "Repository")
    name_outputs = [name for name, output in built["maskterial"].storage.find_outputs("*").items()
                    if output["Value"] == {"Ref": repository}]
    assert len(name_outputs) == 1
    assert name_outputs[0] in image_ref(app) and "maskterial-9a5998c" in image_ref(app)


def test_paddleocr_gets_a_writable_cache_home_and_its_ecr_digest(built):
    app, init = app_and_init(built["ocr"], "ocr")
    assert init["Command"] == ["modelsync", "verify"]
    assert mounts(app)["/var/cache/paddlex"] == ("model-view", False)  # PaddleX writes its scratch there
    assert env(app)["PADDLE_PDX_CACHE_HOME"] == "/var/cache/paddlex"
    assert "paddleocr-api@sha256:9f86d081" in image_ref(app)
    # Its execution role may pull exactly that repository (plus the asset repository for the init image).
    role = logical_id(built["ocr"].service, "AWS::IAM::Role", "^OcrTaskDefinitionExecutionRole")
    pulls = [s for p in resources(built["ocr"].service, "AWS::IAM::Policy").values()
             if {"Ref": role} in p["Properties"]["Roles"]
             for s in p["Properties"]["PolicyDocument"]["Statement"] if "ecr:BatchGetImage" in s["Action"]]
    assert any("repository/paddleocr-api" in json.dumps(s["Resource"]) for s in pulls)


def test_the_model_path_app_gets_its_pins_health_check_and_writable_paths(built):
    b = built["flake"]
    app, init = app_and_init(b, "flake")
    assert env(app)["MODEL_PATH"] == "/opt/models" and mounts(app)["/opt/models"] == ("model-view", True)
    assert app["HealthCheck"]["Command"] == FLAKE_APP["health_command"]
    assert mounts(app)["/var/run/gunicorn"] == ("app-writable-0", False)
    assert app["Image"] == "ghcr.io/example/flake-api:1.4.2"
    sign = containers(b.service, "SigningTaskDefinition")["sign"]  # the step that writes the mirror keeps pins there
    assert env(sign)["MODELSYNC_MIRROR_PINS"] == "SEG_M2F_GrapheneL@3f9c1a7e5b2d4c60"


# ---- ingress --------------------------------------------------------------------------------------

def lb_props(b: Built, app: str) -> dict:
    return resources(b.service, "AWS::ElasticLoadBalancingV2::LoadBalancer")[
        logical_id(b.service, "AWS::ElasticLoadBalancingV2::LoadBalancer", f"^{APPS[app]}Ingress")]["Properties"]


def attributes(b: Built, app: str) -> dict[str, str]:
    return {a["Key"]: a["Value"] for a in lb_props(b, app)["LoadBalancerAttributes"]}


def group_id(b: Built, pattern: str) -> str:
    return logical_id(b.service, "AWS::EC2::SecurityGroup", pattern)


def ingress_rules(b: Built, group: str) -> list[dict]:
    """Every rule letting traffic into `group` (a logical id of the service stack), inline or standalone."""
    props = resources(b.service, "AWS::EC2::SecurityGroup")[group]["Properties"]
    standalone = [r["Properties"] for t in (b.network, b.service)
                  for r in resources(t, "AWS::EC2::SecurityGroupIngress").values()
                  if group in json.dumps(r["Properties"]["GroupId"])]
    return props.get("SecurityGroupIngress", []) + standalone


def listeners(b: Built, app: str) -> dict[int, dict]:
    lb = logical_id(b.service, "AWS::ElasticLoadBalancingV2::LoadBalancer", f"^{APPS[app]}Ingress")
    return {r["Properties"]["Port"]: r["Properties"] for r in
            resources(b.service, "AWS::ElasticLoadBalancingV2::Listener").values()
            if r["Properties"]["LoadBalancerArn"] == {"Ref": lb}}


def url(b: Built, app: str) -> dict:
    return b.service.find_outputs(f"App{APPS[app]}Url")[f"App{APPS[app]}Url"]["Value"]


@pytest.mark.parametrize("app", APPS)
def test_each_app_has_its_own_load_balancer_and_accepts_traffic_only_from_it(built, app):
    b, port = built[app], SETTINGS[app]["port"]
    attrs = attributes(b, app)
    assert attrs["access_logs.s3.enabled"] == "true" and attrs["access_logs.s3.prefix"] == "load-balancer"
    assert attrs["routing.http.drop_invalid_header_fields.enabled"] == "true"
    assert attrs["deletion_protection.enabled"] == "false"  # follows termination_protection
    tasks = group_id(b, f"^{APPS[app]}SecurityGroup[0-9A-F]")
    own_lb = group_id(b, f"^{APPS[app]}IngressSecurityGroup")
    [service_in] = ingress_rules(b, tasks)
    assert (service_in["FromPort"], service_in["ToPort"], service_in["IpProtocol"]) == (port, port, "tcp")
    assert service_in["SourceSecurityGroupId"] == {"Fn::GetAtt": [own_lb, "GroupId"]}
    target_id = logical_id(b.service, "AWS::ElasticLoadBalancingV2::TargetGroup", f"^{APPS[app]}Ingress")
    target = resources(b.service, "AWS::ElasticLoadBalancingV2::TargetGroup")[target_id]["Properties"]
    assert target["Port"] == port and target["HealthCheckPath"] == SETTINGS[app]["health_path"]
    assert {"Key": "deregistration_delay.timeout_seconds", "Value": "30"} in target["TargetGroupAttributes"]
    service = resources(b.service, "AWS::ECS::Service")[logical_id(b.service, "AWS::ECS::Service",
                                                                   f"^{APPS[app]}Service")]["Properties"]
    assert service["HealthCheckGracePeriodSeconds"] == 60
    assert service["LoadBalancers"] == [{"ContainerName": "app", "ContainerPort": port,
                                         "TargetGroupArn": {"Ref": target_id}}]
    assert url(b, app)


def test_the_mirror_takes_nfs_only_from_the_efs_app_and_the_seeding_task(built):
    """In efs mode the app's group reaches the mirror through a rule kept in the app's own stack."""
    b = built["ocr"]
    mirror = logical_id(b.network, "AWS::EC2::SecurityGroup", "SecurityGroupsFileSystem")
    nfs = [r["Properties"] for t in (b.network, b.service)
           for r in resources(t, "AWS::EC2::SecurityGroupIngress").values()
           if mirror in json.dumps(r["Properties"]["GroupId"]) and r["Properties"]["FromPort"] == 2049]
    sources = sorted(json.dumps(r["SourceSecurityGroupId"]) for r in nfs)
    assert len(sources) == 2
    assert any(group_id(b, "^OcrSecurityGroup[0-9A-F]") in s for s in sources)
    assert any(group_id(b, "^SeedSecurityGroup[0-9A-F]") in s for s in sources)
    assert not any("Maskterial" in s for s in sources)  # the s3-mode app never reaches the mirror


def test_internal_ingress_is_http_inside_the_vpc(built):
    b = built["maskterial"]
    assert lb_props(b, "maskterial")["Scheme"] == "internal"
    [listener] = listeners(b, "maskterial").values()
    assert (listener["Port"], listener["Protocol"]) == (80, "HTTP")
    [lb_in] = ingress_rules(b, group_id(b, "^MaskterialIngressSecurityGroup"))
    assert lb_in["FromPort"] == 80 and "CidrIp" in lb_in and "Fn::GetStackOutput" in json.dumps(lb_in["CidrIp"])
    assert url(b, "maskterial")["Fn::Join"][1][0] == "http://"


def test_internal_ingress_can_be_narrowed_to_given_networks(built):
    [lb_in] = ingress_rules(built["flake"], group_id(built["flake"], "^FlakeIngressSecurityGroup"))
    assert lb_in["CidrIp"] == "10.0.0.0/8" and lb_in["FromPort"] == 80


def test_public_ingress_is_https_only_with_a_redirect(built):
    b = built["ocr"]
    assert lb_props(b, "ocr")["Scheme"] == "internet-facing"
    subnets = json.dumps(lb_props(b, "ocr")["Subnets"])
    assert "publicSubnet" in subnets and "privateSubnet" not in subnets
    found = listeners(b, "ocr")
    assert set(found) == {80, 443}
    https = found[443]
    assert https["Protocol"] == "HTTPS" and https["Certificates"] == [
        {"CertificateArn": SETTINGS["ocr"]["certificate_arn"]}]
    assert https["SslPolicy"].startswith("ELBSecurityPolicy-TLS13")
    [redirect] = found[80]["DefaultActions"]
    assert redirect["Type"] == "redirect" and redirect["RedirectConfig"]["Protocol"] == "HTTPS"
    rules = ingress_rules(b, group_id(b, "^OcrIngressSecurityGroup"))
    assert sorted((r["FromPort"], r["CidrIp"]) for r in rules) == [(80, "0.0.0.0/0"), (443, "0.0.0.0/0")]
    assert url(b, "ocr")["Fn::Join"][1][0] == "https://"


def test_no_ingress_means_no_load_balancer_and_no_way_in(s3_built):
    assert resources(s3_built.service, "AWS::ElasticLoadBalancingV2::LoadBalancer") == {}
    assert ingress_rules(s3_built, group_id(s3_built, "^DemoSecurityGroup[0-9A-F]")) == []
    assert not [name for name in s3_built.service.find_outputs("*") if name.endswith("Url")]


# ---- pins and rollbacks ---------------------------------------------------------------------------

def test_rolling_back_by_pin_changes_the_pinned_version_in_the_task_definitions_and_nothing_else(built):
    """A rollback is "edit the pin, deploy": the new task definition revision differs in the pin only, so
    ECS rolls the tasks (and the circuit breaker can roll the pin back with the task definition)."""
    older = "0123456789abcdef"
    rolled = Built({"apps": json.dumps({"flake": {**FLAKE_APP,
                                                  "models": [f"SEG_M2F_GrapheneL@{older}", "CLS_AMM_GrapheneL"]}})},
                   catalog=DEFAULT_CATALOG)
    for stack in ("Network", "Storage", "Service"):
        before = json.dumps(built["flake"].templates()[stack], sort_keys=True)
        after = json.dumps(rolled.templates()[stack], sort_keys=True)
        assert after == before.replace("3f9c1a7e5b2d4c60", older), stack
    assert "3f9c1a7e5b2d4c60" in json.dumps(task_definition(built["flake"].service, task("flake")))


# ---- settings -------------------------------------------------------------------------------------

def one_line(overrides: dict) -> str:
    with pytest.raises(ModelDeliveryError) as caught:
        settings_for(overrides, DEFAULT_CATALOG)
    message = str(caught.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("overrides, fragment", [
    ({"apps.demo.ingress": "open"}, "setting 'apps.demo.ingress' = 'open' is not allowed"),
    ({"apps.demo.image": "nginx"}, None),  # a bare word is a tag of the project repository: allowed
    ({"apps.demo.image": "Not An Image"}, "it is not an image reference"),
    ({"apps.demo.image": "ghcr.io/org/app:1", "apps.demo.ingress": "internal"},
     "setting 'apps.demo.health_path' is required with an image and an ingress"),
    ({"apps.demo.health_path": "status"}, "an HTTP path starting with '/'"),
    ({"apps.demo.view_path": "relative"}, "an absolute, normalized path"),
    ({"apps.demo.port": "70000"}, "1 to 65535"),
])
def test_bad_app_settings_are_one_line_errors(overrides, fragment):
    if fragment is None:
        assert settings_for(overrides, DEFAULT_CATALOG).apps["demo"].image == overrides["apps.demo.image"]
        return
    assert fragment in one_line(overrides)
