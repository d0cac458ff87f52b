"""Serving your own app: the README's three worked configurations ("Serve your own app"), synthesized
exactly as written there with the real catalog and cdk-nag, and the invariants they stand for: no
modelsync in the app container, the init container on the modelsync image, the view read-only at the
app's path, ingress variants and their security groups, pins in the task definition, rollback by pin."""

from __future__ import annotations

import json
import re

import pytest
from cdk_nag import AwsSolutionsChecks

from stacks.app_layout import app_layout
from model_delivery.catalog import DEFAULT_CATALOG
from model_delivery.errors import ModelDeliveryError

from .helpers import PROJECT, Built, containers, env, logical_id, mounts, only, resources, settings_for, task_definition

TASK = "ModelServiceTaskDefinition"


def readme_examples() -> dict[str, dict]:
    """The JSON blocks of the README's "Serve your own app" section, by the example they belong to."""
    text = (PROJECT / "README.md").read_text()
    section = text.split("## Serve your own app", 1)[1].split("\n## ", 1)[0]
    blocks = [json.loads(b) for b in re.findall(r"```json\n(.*?)\n```", section, flags=re.S)]
    assert len(blocks) == 3, "the README shows three worked configurations"
    return dict(zip(("maskterial", "paddleocr", "model_path"), blocks))


EXAMPLES = readme_examples()


@pytest.fixture(scope="module")
def built() -> dict[str, Built]:
    return {name: Built(example, catalog=DEFAULT_CATALOG) for name, example in EXAMPLES.items()}


def app_and_init(b: Built) -> tuple[dict, dict]:
    c = containers(b.service, TASK)
    return c["app"], c["model-pull" if "model-pull" in c else "model-verify"]


def image_ref(container: dict) -> str:
    return json.dumps(container["Image"])


@pytest.mark.parametrize("example", EXAMPLES)
def test_every_readme_example_is_nag_clean(built, example):
    for stack in built[example].delivery.stacks:
        report = AwsSolutionsChecks().validate_scope(stack)
        assert report.success, [(v.rule_name, v.violating_resources) for v in report.violations]


@pytest.mark.parametrize("example", EXAMPLES)
def test_the_app_container_carries_nothing_of_modelsync(built, example):
    app, init = app_and_init(built[example])
    assert app.get("Command") == EXAMPLES[example].get("app_command")  # none: the image's own CMD
    assert "modelsync" not in json.dumps(app.get("Command", [])) + json.dumps(app.get("HealthCheck", {}))
    assert not any(name.startswith("MODELSYNC_") for name in env(app))
    assert "User" not in app  # the image's own user
    assert app["ReadonlyRootFilesystem"] is True and mounts(app)["/tmp"] == ("app-tmp", False)
    assert app["PortMappings"] == [{"ContainerPort": EXAMPLES[example]["app_port"], "Protocol": "tcp"}]
    # The init container is always the modelsync image (the asset built from container/).
    assert init["User"] == "10001:10001" and "cdk-hnb659fds-container-assets" in image_ref(init)
    assert image_ref(app) != image_ref(init)
    assert app["DependsOn"] == [{"ContainerName": init["Name"], "Condition": "SUCCESS"}]


def test_maskterial_sees_its_data_models_tree_from_the_project_repository(built):
    app, init = app_and_init(built["maskterial"])
    assert env(init)["MODELSYNC_LAYOUT"] == "maskterial"
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
    app, init = app_and_init(built["paddleocr"])
    assert init["Command"] == ["modelsync", "verify"] and env(init)["MODELSYNC_LAYOUT"] == "paddlex"
    assert mounts(app)["/var/cache/paddlex"] == ("model-view", False)  # PaddleX writes its scratch there
    assert env(app)["PADDLE_PDX_CACHE_HOME"] == "/var/cache/paddlex"
    assert "paddleocr-api@sha256:9f86d081" in image_ref(app)
    # The execution role may pull exactly that repository (plus the asset repository for the init image).
    pulls = [s for p in resources(built["paddleocr"].service, "AWS::IAM::Policy").values()
             for s in p["Properties"]["PolicyDocument"]["Statement"] if "ecr:BatchGetImage" in s["Action"]]
    assert any("repository/paddleocr-api" in json.dumps(s["Resource"]) for s in pulls)


def test_the_model_path_app_gets_its_pins_health_check_and_writable_paths(built):
    b = built["model_path"]
    app, init = app_and_init(b)
    assert env(init)["MODELSYNC_MODELS"] == "SEG_M2F_GrapheneL@3f9c1a7e5b2d4c60,CLS_AMM_GrapheneL"
    assert env(app)["MODEL_PATH"] == "/opt/models" and mounts(app)["/opt/models"] == ("model-view", True)
    assert app["HealthCheck"]["Command"] == EXAMPLES["model_path"]["app_health_command"]
    assert mounts(app)["/var/run/gunicorn"] == ("app-writable-0", False)
    assert app["Image"] == "ghcr.io/example/flake-api:1.4.2"
    seed = containers(b.service, "SeedingTaskDefinition")["seed"]
    assert env(seed)["MODELSYNC_MIRROR_PINS"] == "SEG_M2F_GrapheneL@3f9c1a7e5b2d4c60"


# ---- ingress --------------------------------------------------------------------------------------

def lb_props(b: Built) -> dict:
    return only(b.service, "AWS::ElasticLoadBalancingV2::LoadBalancer")["Properties"]


def attributes(b: Built) -> dict[str, str]:
    return {a["Key"]: a["Value"] for a in lb_props(b)["LoadBalancerAttributes"]}


def ingress_rules(b: Built, group_pattern: str) -> list[dict]:
    group = logical_id(b.network, "AWS::EC2::SecurityGroup", group_pattern)
    props = resources(b.network, "AWS::EC2::SecurityGroup")[group]["Properties"]
    standalone = [r["Properties"] for t in (b.network, b.service)
                  for r in resources(t, "AWS::EC2::SecurityGroupIngress").values()
                  if group in json.dumps(r["Properties"]["GroupId"])]
    return props.get("SecurityGroupIngress", []) + standalone


@pytest.mark.parametrize("example", ["maskterial", "paddleocr", "model_path"])
def test_the_load_balancer_logs_drops_invalid_headers_and_is_the_only_way_to_the_tasks(built, example):
    b = built[example]
    attrs = attributes(b)
    assert attrs["access_logs.s3.enabled"] == "true" and attrs["access_logs.s3.prefix"] == "load-balancer"
    assert attrs["routing.http.drop_invalid_header_fields.enabled"] == "true"
    assert attrs["deletion_protection.enabled"] == "false"  # dev; prod follows termination_protection
    [service_in] = ingress_rules(b, "SecurityGroupsService")
    port = EXAMPLES[example]["app_port"]
    assert (service_in["FromPort"], service_in["ToPort"], service_in["IpProtocol"]) == (port, port, "tcp")
    lb_group = logical_id(b.network, "AWS::EC2::SecurityGroup", "SecurityGroupsLoadBalancer")
    assert lb_group in json.dumps(service_in["SourceSecurityGroupId"])
    target = only(b.service, "AWS::ElasticLoadBalancingV2::TargetGroup")["Properties"]
    assert target["Port"] == port and target["HealthCheckPath"] == EXAMPLES[example]["app_health_path"]
    assert {"Key": "deregistration_delay.timeout_seconds", "Value": "30"} in target["TargetGroupAttributes"]
    service = only(b.service, "AWS::ECS::Service")["Properties"]
    assert service["HealthCheckGracePeriodSeconds"] == 60
    assert service["LoadBalancers"] == [{"ContainerName": "app", "ContainerPort": port,
                                         "TargetGroupArn": {"Ref": logical_id(b.service,
                                                                              "AWS::ElasticLoadBalancingV2::TargetGroup",
                                                                              "Ingress")}}]
    assert "ServiceUrl" in b.service.find_outputs("*")


def test_internal_ingress_is_http_inside_the_vpc(built):
    b = built["maskterial"]
    assert lb_props(b)["Scheme"] == "internal"
    [listener] = resources(b.service, "AWS::ElasticLoadBalancingV2::Listener").values()
    assert (listener["Properties"]["Port"], listener["Properties"]["Protocol"]) == (80, "HTTP")
    [lb_in] = ingress_rules(b, "SecurityGroupsLoadBalancer")
    assert lb_in["FromPort"] == 80 and "CidrIp" in lb_in and "Fn::GetAtt" in json.dumps(lb_in["CidrIp"])  # the VPC
    assert b.service.find_outputs("ServiceUrl")["ServiceUrl"]["Value"]["Fn::Join"][1][0] == "http://"


def test_internal_ingress_can_be_narrowed_to_given_networks(built):
    [lb_in] = ingress_rules(built["model_path"], "SecurityGroupsLoadBalancer")
    assert lb_in["CidrIp"] == "10.0.0.0/8" and lb_in["FromPort"] == 80


def test_public_ingress_is_https_only_with_a_redirect(built):
    b = built["paddleocr"]
    assert lb_props(b)["Scheme"] == "internet-facing"
    subnets = json.dumps(lb_props(b)["Subnets"])
    assert "publicSubnet" in subnets and "privateSubnet" not in subnets
    listeners = {l["Properties"]["Port"]: l["Properties"] for l in
                 resources(b.service, "AWS::ElasticLoadBalancingV2::Listener").values()}
    assert set(listeners) == {80, 443}
    https = listeners[443]
    assert https["Protocol"] == "HTTPS" and https["Certificates"] == [
        {"CertificateArn": EXAMPLES["paddleocr"]["certificate_arn"]}]
    assert https["SslPolicy"].startswith("ELBSecurityPolicy-TLS13")
    [redirect] = listeners[80]["DefaultActions"]
    assert redirect["Type"] == "redirect" and redirect["RedirectConfig"]["Protocol"] == "HTTPS"
    rules = ingress_rules(b, "SecurityGroupsLoadBalancer")
    assert sorted((r["FromPort"], r["CidrIp"]) for r in rules) == [(80, "0.0.0.0/0"), (443, "0.0.0.0/0")]
    assert b.service.find_outputs("ServiceUrl")["ServiceUrl"]["Value"]["Fn::Join"][1][0] == "https://"


def test_no_ingress_means_no_load_balancer_and_no_way_in(s3_built):
    assert resources(s3_built.service, "AWS::ElasticLoadBalancingV2::LoadBalancer") == {}
    assert ingress_rules(s3_built, "SecurityGroupsService") == []
    assert "ServiceUrl" not in s3_built.service.find_outputs("*")


# ---- pins and rollbacks ---------------------------------------------------------------------------

def test_rolling_back_by_pin_changes_the_pinned_version_in_the_task_definitions_and_nothing_else(built):
    """A rollback is "edit the pin, deploy": the new task definition revision differs in the pin only, so
    ECS rolls the tasks (and the circuit breaker can roll the pin back with the task definition)."""
    example = EXAMPLES["model_path"]
    older = "0123456789abcdef"
    rolled = Built({**example, "service_models": [f"SEG_M2F_GrapheneL@{older}", "CLS_AMM_GrapheneL"]},
                   catalog=DEFAULT_CATALOG)
    for stack in ("Network", "Storage", "Service"):
        before = json.dumps(built["model_path"].templates()[stack], sort_keys=True)
        after = json.dumps(rolled.templates()[stack], sort_keys=True)
        assert after == before.replace("3f9c1a7e5b2d4c60", older), stack
    assert "3f9c1a7e5b2d4c60" in json.dumps(task_definition(built["model_path"].service, TASK))


# ---- settings -------------------------------------------------------------------------------------

def one_line(overrides: dict, *, layout: bool = False) -> str:
    with pytest.raises(ModelDeliveryError) as caught:
        settings = settings_for(overrides, DEFAULT_CATALOG)
        if layout:
            app_layout(settings)
    message = str(caught.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("overrides, fragment", [
    ({"ingress": "public"}, "setting 'ingress' = 'public' needs 'certificate_arn'"),
    ({"ingress": "open"}, "setting 'ingress' = 'open' is not allowed"),
    ({"certificate_arn": "arn:aws:acm:eu-west-1:123456789012:certificate/x"}, "empty when ingress is 'none'"),
    ({"ingress": "internal", "ingress_cidrs": ["10.0.0.0/33"]}, "IPv4 CIDR blocks"),
    ({"app_image": "nginx"}, None),  # a bare word is a tag of the project repository: allowed
    ({"app_image": "ghcr.io/org/app"}, "it has no tag or digest"),
    ({"app_image": "Not An Image"}, "it is not an image reference"),
    ({"app_image": "ghcr.io/org/app:1", "ingress": "internal"}, "'app_health_path' is required with app_image"),
    ({"app_health_path": "status"}, "an HTTP path starting with '/'"),
    ({"app_health_command": ["curl", "-f", "x"]}, 'starting with "CMD"'),
    ({"app_models_path": "/models/view"}, "lies inside /models (the model store)"),
    ({"app_models_path": "relative"}, "an absolute, normalized path"),
    ({"app_writable_paths": ["/srv/models/x"]}, "lies inside /srv/models (app_models_path)"),
    ({"app_environment": {"MODELSYNC_DEST": "/x"}}, "not starting with a digit or MODELSYNC_"),
    ({"app_port": 70000}, "a TCP port, 1-65535"),
    ({"app_stop_timeout_seconds": 300}, "2 to 120 seconds"),
    ({"service_models": ["paddleocr@../x"]}, "NAME or NAME@VERSION"),
    ({"service_models": ["paddleocr@a", "paddleocr@b"]}, "each model once"),
    ({"service_models": ["nope@0123"]}, "setting 'service_models' = 'nope' is not allowed"),
])
def test_bad_app_and_ingress_settings_are_one_line_errors(overrides, fragment):
    if fragment is None:
        assert settings_for(overrides, DEFAULT_CATALOG).app_image == overrides["app_image"]
        return
    assert fragment in one_line(overrides)


def test_a_layout_that_cannot_place_a_served_model_is_refused_at_synth():
    message = one_line({"app_layout": "maskterial"}, layout=True)  # the default selection includes paddleocr
    assert message.startswith("setting 'app_layout' = 'maskterial' does not fit the served models: ")
    assert "'paddleocr'" in message


def test_an_unknown_layout_and_an_environment_clash_are_refused_at_synth():
    assert "setting 'app_layout' = 'tree' is not allowed" in one_line({"app_layout": "tree"}, layout=True)
    message = one_line({"app_environment": {"MODEL_PATH": "/x"}}, layout=True)
    assert message.startswith("setting 'app_environment' sets MODEL_PATH, which layout 'flat' sets")


def test_ingress_needs_a_region_at_synth():
    from stacks.settings import load_settings

    from .helpers import cdk_json_context

    context = {**cdk_json_context(), "ingress": "internal"}
    with pytest.raises(ModelDeliveryError, match="needs a region at synth"):
        load_settings(context.get, environ={}, catalog_path=DEFAULT_CATALOG)
