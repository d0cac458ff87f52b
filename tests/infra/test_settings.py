"""Settings: cdk.json defaults, stages, apps, `-c` overrides (flat and nested), the refusal of the old flat keys,
one-line errors for every bad value, and the generated reference."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from model_delivery.catalog import DEFAULT_CATALOG, load_catalog
from model_delivery.errors import ModelDeliveryError
from stacks.settings import AppSettings, load_settings
from stacks.settings.load import FLAT_KEYS, MOVED_TO_APP
from stacks.settings.reference import PAGE, render
from stacks.settings.schema import default_of
from stacks.settings.sections import SECTIONS

from .helpers import ACCOUNT, ENVIRON, FIXTURE_CATALOG, PROJECT, cdk_json_context, settings_for


def error_for(overrides: dict, catalog: Path = FIXTURE_CATALOG) -> str:
    with pytest.raises(ModelDeliveryError) as caught:
        settings_for(overrides, catalog)
    message = str(caught.value)
    assert "\n" not in message, f"error must be one line: {message!r}"
    return message


def with_stage_block(stage: str, block: dict) -> dict:
    """cdk.json's context with `block` merged into one stage's settings."""
    context = cdk_json_context()
    context["model-delivery"]["stages"][stage] = {**context["model-delivery"]["stages"].get(stage, {}), **block}
    return {**context, "stage": stage}


def load(context: dict, catalog: Path = FIXTURE_CATALOG):
    return load_settings(context, environ=ENVIRON, catalog_path=catalog)


def test_cdk_json_defaults_are_the_declared_defaults():
    # docs/settings.md is generated from the declarations: cdk.json must not say otherwise.
    defaults = cdk_json_context()["model-delivery"]["defaults"]
    assert set(defaults) == set(FLAT_KEYS) | {"apps"} and defaults["apps"] == {}
    sections = {f.name: f for section in SECTIONS for f in section.settable()}
    for key, value in defaults.items():
        if key == "apps":
            continue
        declared = default_of(sections[key])
        assert value == (list(declared) if isinstance(declared, tuple) else declared), key


def test_a_stage_without_apps_runs_the_demo_app_on_the_enabled_models():
    s = settings_for({})
    assert s.stage.name == "dev" and (s.stage.account, s.stage.region) == (ACCOUNT, "eu-west-1")
    assert list(s.apps) == ["demo"]
    demo = s.apps["demo"]
    assert demo.demo and (demo.delivery_mode, demo.cpu, demo.desired_count, demo.layout) == ("s3", 1024, 1, "flat")
    assert s.seeded_models == ("SEG_M2F_GrapheneL", "CLS_AMM_GrapheneL", "paddleocr")
    assert demo.served_models == s.seeded_models


def test_prod_sizes_its_demo_app_and_protects_its_stacks():
    s = settings_for({"stage": "prod"})
    assert (s.network.nat_gateways, s.stage.log_retention_days, s.stage.termination_protection) == (2, 365, True)
    demo = s.apps["demo"]
    assert (demo.cpu, demo.memory_mib, demo.desired_count, demo.min_capacity, demo.max_capacity) == (
        2048, 8192, 2, 2, 8)


def test_the_example_stage_serves_two_apps_from_one_seeding():
    s = settings_for({"stage": "example"})
    assert list(s.apps) == ["maskterial", "ocr"]
    maskterial, ocr = s.apps["maskterial"], s.apps["ocr"]
    assert (maskterial.layout, maskterial.delivery_mode, maskterial.ingress) == ("maskterial", "s3", "internal")
    assert (ocr.layout, ocr.delivery_mode, ocr.ingress) == ("paddlex", "efs", "public")
    # The union of both apps' models, in order, each once: what the seeding task publishes.
    assert s.seeded_models == ("SEG_M2F_Synthetic_Data", "SEG_M2F_GrapheneL", "CLS_AMM_GrapheneL",
                               "PP_L2_material_agnostic", "paddleocr")
    assert ocr.served_models == ("paddleocr",)


def test_flat_and_nested_command_line_values_are_parsed_by_type():
    s = settings_for({"seed_on_deploy": "true", "tags": '{"team": "ml"}',
                      "apps.demo.desired_count": "3", "apps.demo.max_capacity": "5",
                      "apps.demo.models": "paddleocr, CLS_AMM_GrapheneL", "apps.demo.delivery_mode": "efs",
                      "apps.demo.alarms.pull_seconds": "600"})
    demo = s.apps["demo"]
    assert s.seeding.seed_on_deploy is True and s.stage.tags == {"team": "ml"}
    assert (demo.desired_count, demo.max_capacity, demo.delivery_mode) == (3, 5, "efs")
    assert demo.served_models == ("paddleocr", "CLS_AMM_GrapheneL")
    assert demo.alarms.pull_seconds == 600 and demo.alarms.tasks_below_desired_minutes == 10


def test_a_nested_override_reaches_one_app_of_a_stage_and_a_json_block_adds_one():
    s = settings_for({"stage": "example", "apps.ocr.desired_count": "3"})
    assert s.apps["ocr"].desired_count == 3 and s.apps["maskterial"].desired_count == 1
    added = settings_for({"apps": json.dumps({"extra": {"models": ["paddleocr"], "layout": "paddlex"}})})
    assert list(added.apps) == ["extra"]  # an explicit app replaces the implicit demo
    assert added.apps["extra"].layout == "paddlex"


@pytest.mark.parametrize("key", ["apps.ocr", "apps.ocr.cpu.x", "apps..cpu", "apps.ocr.alarms.pull_seconds.x"])
def test_a_bad_command_line_path_says_the_syntax(key):
    message = error_for({"stage": "example", key: "3"})
    assert message.startswith(f"-c {key} is not a setting")
    assert "-c apps.NAME.KEY=VALUE" in message and "apps.ocr.desired_count=3" in message


def test_an_unknown_app_key_names_its_full_path():
    message = error_for({"stage": "example", "apps.ocr.cpus": "1024"})
    assert message.startswith("unknown setting 'apps.ocr.cpus': allowed here are image, ") and " cpu, " in message
    assert "docs/settings.md" in message


@pytest.mark.parametrize("old, value, new", [
    ("service_cpu", 2048, '"cpu": 2048'),
    ("app_models_path", "/opt/models", '"view_path": "/opt/models"'),
    ("alarm_pull_seconds", 600, '"alarms": {"pull_seconds": 600}'),
    ("service_models", ["paddleocr"], '"models": ["paddleocr"]'),
])
def test_old_flat_keys_in_cdk_json_are_refused_with_the_equivalent_apps_block(old, value, new):
    with pytest.raises(ModelDeliveryError) as caught:
        load(with_stage_block("prod", {old: value}))
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"setting {old!r} in 'model-delivery.stages.prod' now belongs to an app: use "
                              f'"apps": {{"demo": {{')
    assert new in message


def test_old_flat_keys_on_the_command_line_are_refused_with_the_equivalent_paths():
    message = error_for({"delivery_mode": "efs", "alarm_pull_seconds": "600"})
    assert message.startswith("setting 'delivery_mode' on the command line now belongs to an app: use "
                              "-c apps.demo.delivery_mode=efs -c apps.demo.alarms.pull_seconds=600 instead")


def test_every_old_key_has_a_home_in_the_app_block():
    app_keys = set(AppSettings.setting_names())
    for old, new in MOVED_TO_APP.items():
        assert new.split(".")[0] in app_keys, old


@pytest.mark.parametrize("overrides, names", [
    ({"stage": "staging"}, ["'stage'", "'staging'", "dev, example, prod"]),
    ({"apps.demo.delivery_mode": "ftp"}, ["'apps.demo.delivery_mode'", "'ftp'", "'s3'", "'efs'"]),
    ({"max_azs": "1"}, ["'max_azs'", "1", "2 to 6"]),
    ({"nat_gateways": "0"}, ["'nat_gateways'", "0", "egress"]),
    ({"apps.demo.cpu": "300"}, ["'apps.demo.cpu'", "300", "256, 512, 1024"]),
    ({"apps.demo.memory_mib": "1000"}, ["'apps.demo.memory_mib'", "1000", "2048 to 8192 MiB in steps of 1024"]),
    ({"seed_memory_mib": "2048"}, ["'seed_memory_mib'", "2048", "with setting 'seed_cpu' 2048"]),
    ({"apps.demo.desired_count": "9"}, ["'apps.demo.desired_count'", "9", "1..4"]),
    ({"apps.demo.desired_count": "two"}, ["'apps.demo.desired_count'", "'two'", "whole number"]),
    ({"apps.demo.min_capacity": "5"}, ["'apps.demo.min_capacity'", "5", "max_capacity (4)"]),
    ({"apps.demo.target_cpu_percent": "95"}, ["'apps.demo.target_cpu_percent'", "95", "10 to 90"]),
    ({"apps.demo.ephemeral_storage_gib": "300"}, ["'apps.demo.ephemeral_storage_gib'", "300", "21 to 200"]),
    ({"apps.demo.stop_timeout_seconds": "121"}, ["'apps.demo.stop_timeout_seconds'", "121", "2 to 120"]),
    ({"apps.demo.alarms.pull_seconds": "0"}, ["'apps.demo.alarms.pull_seconds'", "0", "1 to 86400"]),
    ({"apps.demo.view_path": "/models/x"}, ["'apps.demo.view_path'", "/models/x", "lies inside /models"]),
    ({"apps.demo.view_path": "/var/lib/modelsync"}, ["'apps.demo.view_path'", "lies inside /var/lib/modelsync/view"]),
    ({"apps.demo.writable_paths": "/srv/models/cache"}, ["'apps.demo.writable_paths'", "lies inside /srv/models",
                                                         "(view_path)"]),
    ({"apps.demo.layout": "nosuch"}, ["'apps.demo.layout'", "'nosuch'", "unknown layout"]),
    ({"apps.demo.layout": "maskterial"}, ["'apps.demo.layout'", "cannot place model 'paddleocr'"]),
    ({"apps.demo.image": "ghcr.io/org/app"}, ["'apps.demo.image'", "no tag or digest"]),
    ({"apps.demo.alarms": "3"}, ["'apps.demo.alarms'", "an object of tasks_below_desired_minutes"]),
    ({"apps.demo.environment": '{"MODELSYNC_X": "1"}'}, ["'apps.demo.environment'", "MODELSYNC_"]),
    ({"apps.demo.health_command": '["curl"]'}, ["'apps.demo.health_command'", "CMD-SHELL"]),
    ({"apps.demo.ingress": "public"}, ["'apps.demo.ingress' = 'public' needs apps.demo.certificate_arn"]),
    ({"apps.demo.ingress_cidrs": "10.0.0.0/8"}, ["'apps.demo.ingress_cidrs'", "empty when ingress is 'none'"]),
    ({"apps.demo.ingress": "internal", "apps.demo.ingress_cidrs": "10.0.0.0/33"}, ["'apps.demo.ingress_cidrs'",
                                                                                   "'10.0.0.0/33'"]),
    ({"log_retention_days": "31"}, ["'log_retention_days'", "31", "30, 60"]),
    ({"image_source": "docker"}, ["'image_source'", "'docker'", "'asset'", "'ecr'"]),
    ({"image_source": "ecr"}, ["'image_tag'", "''", "when image_source is 'ecr'"]),
    ({"image_tag": "v1"}, ["'image_tag'", "'v1'", "image_source=ecr"]),
    ({"removal_policy": "snapshot"}, ["'removal_policy'", "'snapshot'", "'retain'", "'destroy'"]),
    ({"seed_on_deploy": "yes"}, ["'seed_on_deploy'", "'yes'", "true or false"]),
    ({"tags": "team=ml"}, ["'tags'", "'team=ml'", "JSON object"]),
    ({"tags": '{"aws:owner": "x"}'}, ["'tags'", "aws:owner", "not starting with 'aws:'"]),
    ({"account": "12345"}, ["'account'", "'12345'", "12-digit"]),
    ({"vpc_id": "my-vpc"}, ["'vpc_id'", "'my-vpc'", "vpc-0123456789abcdef0"]),
    ({"alarm_email": "ops"}, ["'alarm_email'", "'ops'", "one email address"]),
    ({"alarm_efs_io_limit_percent": "101"}, ["'alarm_efs_io_limit_percent'", "101", "1 to 100"]),
    ({"apps.demo.models": "NoSuchModel"}, ["'apps.demo.models'", "'NoSuchModel'", "SEG_M2F_GrapheneL"]),
    ({"apps.demo.models": "paddleocr@v..1"}, ["'apps.demo.models'", "'paddleocr@v..1'", "NAME@VERSION"]),
    ({"apps.demo.models": "paddleocr,paddleocr@abc"}, ["'apps.demo.models'", "names paddleocr more than once"]),
    ({"seed_models": "paddleocr,Typo"}, ["'seed_models'", "'Typo'", "catalog.yaml"]),
    ({"publisher_role_arns": "alice"}, ["'publisher_role_arns'", "'alice'", "IAM role ARNs"]),
    ({"publisher_role_arns": "arn:aws:iam::111111111111:role/*"}, ["'publisher_role_arns'", "role/*",
                                                                   "no wildcards"]),
])
def test_bad_values_name_the_setting_the_value_and_what_is_allowed(overrides, names):
    message = error_for(overrides)
    for name in names:
        assert name in message, f"{name!r} missing from: {message}"


@pytest.mark.parametrize("name", ["OCR", "1app", "my_app", "a-", "a" * 21])
def test_app_names_are_short_and_dns_safe(name):
    message = error_for({"apps": json.dumps({name: {}})})
    assert message.startswith(f"app name {name!r} under 'apps' is not allowed: use 1-20 lower-case letters")


def test_two_apps_whose_names_differ_only_in_a_dash_are_refused():
    message = error_for({"apps": json.dumps({"doc-ocr": {}, "dococr": {}})})
    assert message.startswith("apps 'doc-ocr' and 'dococr' differ only in '-'")


def test_a_certificate_must_be_in_the_stages_region_and_account():
    other_region = "arn:aws:acm:us-east-1:123456789012:certificate/0a1b2c3d-4e5f-6789-abcd-ef0123456789"
    message = error_for({"stage": "example", "apps.ocr.certificate_arn": other_region})
    assert message.startswith(f"setting 'apps.ocr.certificate_arn' = '{other_region}' is not allowed: use a "
                              "certificate in the stage's region eu-west-1 (ACM certificates are regional")
    other_account = "arn:aws:acm:eu-west-1:222222222222:certificate/0a1b2c3d-4e5f-6789-abcd-ef0123456789"
    message = error_for({"stage": "example", "apps.ocr.certificate_arn": other_account})
    assert "a certificate of the stage's account 123456789012" in message


def test_a_load_balancer_needs_a_region_at_synth():
    context = {**cdk_json_context(), "apps.demo.ingress": "internal"}
    with pytest.raises(ModelDeliveryError, match="'apps.demo.ingress' = 'internal' needs a region at synth"):
        load_settings(context, environ={"CDK_DEFAULT_ACCOUNT": ACCOUNT}, catalog_path=FIXTURE_CATALOG)


def test_existing_vpc_needs_an_explicit_account_and_region():
    context = {**cdk_json_context(), "vpc_id": "vpc-0123456789abcdef0"}
    with pytest.raises(ModelDeliveryError, match="needs an explicit account and region") as caught:
        load_settings(context, environ={}, catalog_path=FIXTURE_CATALOG)
    assert "CDK_DEFAULT_ACCOUNT" in str(caught.value)
    assert settings_for({"vpc_id": "vpc-0123456789abcdef0"}).network.vpc_id == "vpc-0123456789abcdef0"


def test_every_apps_models_are_seeded_beside_seed_models():
    s = settings_for({"seed_models": "paddleocr", "apps": json.dumps(
        {"a": {"models": ["SEG_M2F_Synthetic_Data"], "ephemeral_storage_gib": 21}, "b": {"models": ["paddleocr"]}})})
    assert s.seeded_models == ("paddleocr", "SEG_M2F_Synthetic_Data")


def test_s3_mode_needs_room_for_the_served_models_twice():
    # Fixture sizes: SEG_M2F_Synthetic_Data 10240 MB, SEG_M2F_GrapheneL 2048 MB.
    alone = {"apps.demo.models": "SEG_M2F_Synthetic_Data", "apps.demo.ephemeral_storage_gib": "20"}
    assert settings_for(alone).apps["demo"].ephemeral_storage_gib == 20  # 2 x 10 GiB fits exactly
    both = {"apps.demo.models": "SEG_M2F_Synthetic_Data,SEG_M2F_GrapheneL", "apps.demo.ephemeral_storage_gib": "21"}
    message = error_for(both)
    assert message.startswith("setting 'apps.demo.ephemeral_storage_gib' = 21 is not allowed: use at least 24 GiB "
                              "in s3 mode: 2 times the served models (SEG_M2F_Synthetic_Data, SEG_M2F_GrapheneL)")
    # efs mode keeps no local copy, so the same selection is fine there.
    assert settings_for({**both, "apps.demo.delivery_mode": "efs"}).apps["demo"].delivery_mode == "efs"


def test_seeding_task_needs_room_for_the_largest_archive(tmp_path):
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text("models:\n  - {name: huge, enabled: true, approx_size_mb: 30000}\n")
    message = error_for({"apps.demo.delivery_mode": "efs"}, catalog)
    assert message.startswith("setting 'seed_ephemeral_storage_gib' = 50 is not allowed: use at least 59 GiB")
    assert settings_for({"apps.demo.delivery_mode": "efs", "seed_ephemeral_storage_gib": "59"},
                        catalog).seeded_models == ("huge",)


def test_the_layout_environment_cannot_be_set_twice():
    message = error_for({"apps.demo.environment": '{"MODEL_PATH": "/x"}'})
    assert message.startswith("setting 'apps.demo.environment' sets MODEL_PATH, which layout 'flat' sets")


@pytest.mark.parametrize("text, problem", [
    ("models: []\n", "needs a top-level 'models:' list"),
    ("models: [\n", "is not valid YAML"),
    ("models:\n  - {name: a, enabled: true}\n", "'approx_size_mb' is None"),
    ("models:\n  - {name: a, enabled: maybe, approx_size_mb: 1}\n", "'enabled' is 'maybe'"),
    ("models:\n  - {name: a, approx_size_mb: 1}\n  - {name: a, approx_size_mb: 2}\n", "names a more than once"),
])
def test_catalog_problems_are_one_line_errors(tmp_path, text, problem):
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(text)
    assert problem in error_for({}, catalog)


def test_missing_catalog_is_named(tmp_path):
    assert f"model catalog {tmp_path / 'nope.yaml'} not found" in error_for({}, tmp_path / "nope.yaml")


def test_the_real_catalog_satisfies_every_stage():
    # Guards the seam with container/modelsync/catalog.yaml: its format and sizes keep the shipped stages valid.
    catalog = load_catalog(DEFAULT_CATALOG)
    for overrides in ({}, {"stage": "prod"}, {"apps.demo.delivery_mode": "efs"}, {"stage": "example"}):
        settings = settings_for(overrides, catalog=DEFAULT_CATALOG)
        assert set(catalog.enabled_names) <= set(settings.seeded_models) or overrides == {"stage": "example"}


def test_app_py_prints_one_line_and_exits_2_on_a_bad_setting():
    # As `cdk synth -c apps.demo.delivery_mode=ftp` runs it: the CLI passes context in CDK_CONTEXT_JSON.
    context = {**cdk_json_context(), "apps.demo.delivery_mode": "ftp"}
    env = {**os.environ, **ENVIRON, "CDK_CONTEXT_JSON": json.dumps(context),
           "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20"}
    result = subprocess.run([sys.executable, "app.py"], cwd=PROJECT, env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "model-delivery: error: setting 'apps.demo.delivery_mode' = 'ftp' is not allowed: use 's3' (each task "
        "pulls its models from the bucket into its own storage) or 'efs' (tasks mount the EFS mirror read-only) or "
        "'s3files' (tasks mount the models bucket itself read-only, through Amazon S3 Files)"]
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_unknown_setting_in_cdk_json_is_named():
    with pytest.raises(ModelDeliveryError) as caught:
        load(with_stage_block("prod", {"desired_cout": 3}))
    assert str(caught.value).startswith("unknown setting 'desired_cout' in 'model-delivery.stages.prod': allowed are")


def test_the_settings_reference_is_generated_from_the_declarations():
    """docs/settings.md is what `make docs` writes; edit stacks/settings/sections.py and run it."""
    assert PAGE.read_text() == render(), "docs/settings.md is stale: run `make docs` and commit it"
    for section in SECTIONS:
        for name in section.setting_names():
            assert f"`{name}`" in PAGE.read_text() or f".{name}`" in PAGE.read_text(), name
