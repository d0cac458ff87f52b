"""Settings: cdk.json defaults, stages, `-c` overrides, and one-line errors for every bad value."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from model_delivery.catalog import DEFAULT_CATALOG, load_catalog
from model_delivery.errors import ModelDeliveryError
from stacks.settings import SETTABLE, Settings, load_settings

from .helpers import ACCOUNT, ENVIRON, FIXTURE_CATALOG, PROJECT, cdk_json_context, settings_for


def error_for(overrides: dict, catalog: Path = FIXTURE_CATALOG) -> str:
    with pytest.raises(ModelDeliveryError) as caught:
        settings_for(overrides, catalog)
    message = str(caught.value)
    assert "\n" not in message, f"error must be one line: {message!r}"
    return message


def test_cdk_json_defaults_match_the_dataclass_defaults():
    # The settings table in docs/infrastructure.md is written from these; they must not drift apart.
    defaults = cdk_json_context()["model-delivery"]["defaults"]
    assert set(defaults) == set(SETTABLE)
    for key, value in defaults.items():
        expected = getattr(Settings(), key)
        if isinstance(expected, tuple):
            expected = list(expected)
        assert value == (expected if expected is not None else ""), key


def test_dev_stage_is_the_default_and_uses_the_defaults():
    s = settings_for({})
    assert (s.stage, s.delivery_mode, s.nat_gateways, s.desired_count) == ("dev", "s3", 1, 1)
    assert (s.account, s.region) == (ACCOUNT, "eu-west-1")  # from CDK_DEFAULT_* when the stage sets none
    assert s.termination_protection is False
    # Nothing selected: the catalog's enabled entries are seeded and all of them are served.
    assert s.seeded_models == ("SEG_M2F_GrapheneL", "CLS_AMM_GrapheneL", "paddleocr")
    assert s.served_models == s.seeded_models


def test_prod_stage_overrides_the_defaults():
    s = settings_for({"stage": "prod"})
    assert (s.nat_gateways, s.desired_count, s.min_capacity, s.log_retention_days) == (2, 2, 2, 365)
    assert s.termination_protection is True
    assert s.removal_policy == "retain"


def test_command_line_strings_are_parsed_by_type():
    s = settings_for({"desired_count": "3", "max_capacity": "5", "seed_on_deploy": "true",
                      "service_models": "paddleocr, CLS_AMM_GrapheneL", "tags": '{"team": "ml"}',
                      "delivery_mode": "efs"})
    assert s.desired_count == 3 and s.max_capacity == 5 and s.seed_on_deploy is True
    assert s.service_models == ("paddleocr", "CLS_AMM_GrapheneL")
    assert s.tags == {"team": "ml"}
    assert s.delivery_mode == "efs"


def test_seed_fingerprint_follows_the_image_tag_when_the_image_carries_the_catalog():
    ecr = {"image_source": "ecr", "image_tag": "v1"}
    assert settings_for(ecr).seed_fingerprint != settings_for({**ecr, "image_tag": "v2"}).seed_fingerprint
    assert settings_for({}).seed_fingerprint != settings_for(ecr).seed_fingerprint


def test_seed_fingerprint_follows_catalog_and_selection(tmp_path):
    base = settings_for({})
    assert settings_for({}).seed_fingerprint == base.seed_fingerprint  # stable across runs
    assert settings_for({"seed_models": "paddleocr"}).seed_fingerprint != base.seed_fingerprint
    edited = tmp_path / "catalog.yaml"
    edited.write_text(FIXTURE_CATALOG.read_text().replace("approx_size_mb: 180", "approx_size_mb: 181"))
    assert settings_for({}, catalog=edited).seed_fingerprint != base.seed_fingerprint


@pytest.mark.parametrize("overrides, names", [
    ({"stage": "staging"}, ["'stage'", "'staging'", "dev, prod"]),
    ({"delivery_mode": "ftp"}, ["'delivery_mode'", "'ftp'", "'s3'", "'efs'"]),
    ({"max_azs": "1"}, ["'max_azs'", "1", "2 to 6"]),
    ({"nat_gateways": "0"}, ["'nat_gateways'", "0", "egress"]),
    ({"service_cpu": "300"}, ["'service_cpu'", "300", "256, 512, 1024"]),
    ({"service_memory_mib": "1000"}, ["'service_memory_mib'", "1000", "2048 to 8192 MiB in steps of 1024"]),
    ({"seed_memory_mib": "2048"}, ["'seed_memory_mib'", "2048", "with seed_cpu 2048"]),
    ({"desired_count": "9"}, ["'desired_count'", "9", "1..4"]),
    ({"desired_count": "two"}, ["'desired_count'", "'two'", "whole number"]),
    ({"min_capacity": "5"}, ["'min_capacity'", "5", "max_capacity (4)"]),
    ({"target_cpu_percent": "95"}, ["'target_cpu_percent'", "95", "10 to 90"]),
    ({"ephemeral_storage_gib": "300"}, ["'ephemeral_storage_gib'", "300", "21 to 200"]),
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
    ({"service_models": "NoSuchModel"}, ["'service_models'", "'NoSuchModel'", "SEG_M2F_GrapheneL"]),
    ({"seed_models": "paddleocr,Typo"}, ["'seed_models'", "'Typo'", "catalog.yaml"]),
    ({"service_models": "SEG_M2F_Synthetic_Data"}, ["'service_models'", "SEG_M2F_Synthetic_Data", "seed_models"]),
    ({"publisher_role_arns": "alice"}, ["'publisher_role_arns'", "'alice'", "IAM role ARNs"]),
    ({"publisher_role_arns": "arn:aws:iam::111111111111:role/*"}, ["'publisher_role_arns'", "role/*",
                                                                   "no wildcards"]),
    ({"publisher_role_arns": "arn:aws:iam::111111111111:user/bob"}, ["'publisher_role_arns'", "user/bob"]),
])
def test_bad_values_name_key_value_and_what_is_allowed(overrides, names):
    message = error_for(overrides)
    for name in names:
        assert name in message, f"{name!r} missing from: {message}"


def test_publisher_role_arns_are_a_list_of_role_arns():
    arns = "arn:aws:iam::111111111111:role/ModelPublisher,arn:aws:iam::111111111111:role/ops/Pruner"
    assert settings_for({"publisher_role_arns": arns}).publisher_role_arns == tuple(arns.split(","))
    assert settings_for({}).publisher_role_arns == ()


def test_existing_vpc_needs_an_explicit_account_and_region():
    context = {**cdk_json_context(), "vpc_id": "vpc-0123456789abcdef0"}
    with pytest.raises(ModelDeliveryError, match="needs an explicit account and region") as caught:
        load_settings(context.get, environ={}, catalog_path=FIXTURE_CATALOG)
    assert "CDK_DEFAULT_ACCOUNT" in str(caught.value)
    # With an environment the same id is accepted.
    assert settings_for({"vpc_id": "vpc-0123456789abcdef0"}).uses_existing_vpc


def test_s3_mode_needs_room_for_the_served_models_twice():
    # Fixture sizes: SEG_M2F_Synthetic_Data 10240 MB, SEG_M2F_GrapheneL 2048 MB.
    alone = {"seed_models": "SEG_M2F_Synthetic_Data", "ephemeral_storage_gib": "20"}
    assert settings_for(alone).ephemeral_storage_gib == 20  # 2 x 10 GiB fits exactly
    both = {"seed_models": "SEG_M2F_Synthetic_Data,SEG_M2F_GrapheneL", "ephemeral_storage_gib": "21"}
    message = error_for(both)
    assert message.startswith("setting 'ephemeral_storage_gib' = 21 is not allowed: use at least 24 GiB")
    assert "twice the selected models (SEG_M2F_Synthetic_Data, SEG_M2F_GrapheneL)" in message
    assert "size estimates in the catalog" in message
    # Only the served models count: serving one of the two fits again.
    assert settings_for({**both, "service_models": "SEG_M2F_GrapheneL"}).served_models == ("SEG_M2F_GrapheneL",)
    # efs mode keeps no local copy, so the same selection is fine there.
    assert settings_for({**both, "delivery_mode": "efs"}).delivery_mode == "efs"


def test_seeding_task_needs_room_for_the_largest_archive(tmp_path):
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text("models:\n  - {name: huge, enabled: true, approx_size_mb: 30000}\n")
    message = error_for({"delivery_mode": "efs"}, catalog)
    assert message.startswith("setting 'seed_ephemeral_storage_gib' = 50 is not allowed: use at least 59 GiB")
    assert "largest seeded archive" in message
    assert settings_for({"delivery_mode": "efs", "seed_ephemeral_storage_gib": "59"}, catalog).seeded_models == ("huge",)


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


def test_the_real_catalog_satisfies_both_stages():
    # Guards the seam with container/modelsync/catalog.yaml: its format and sizes must keep
    # the shipped defaults valid in both delivery modes.
    catalog = load_catalog(DEFAULT_CATALOG)
    assert catalog.enabled_names
    for overrides in ({}, {"stage": "prod"}, {"delivery_mode": "efs"}):
        settings = settings_for(overrides, catalog=DEFAULT_CATALOG)
        assert settings.seeded_models == catalog.enabled_names


def test_app_py_prints_one_line_and_exits_2_on_a_bad_setting():
    # As `cdk synth -c delivery_mode=ftp` runs it: the CLI passes context in CDK_CONTEXT_JSON.
    context = {**cdk_json_context(), "delivery_mode": "ftp"}
    env = {**os.environ, **ENVIRON, "CDK_CONTEXT_JSON": json.dumps(context),
           "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20"}
    result = subprocess.run([sys.executable, "app.py"], cwd=PROJECT, env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines == ["model-delivery: error: setting 'delivery_mode' = 'ftp' is not allowed: use 's3' (each task "
                     "downloads its models) or 'efs' (tasks read the EFS mirror)"]
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_unknown_setting_in_cdk_json_is_named():
    context = cdk_json_context()
    context["model-delivery"]["stages"]["prod"]["desired_cout"] = 3
    with pytest.raises(ModelDeliveryError) as caught:
        load_settings({**context, "stage": "prod"}.get, environ=ENVIRON, catalog_path=FIXTURE_CATALOG)
    assert str(caught.value).startswith("unknown setting 'desired_cout' in 'model-delivery.stages.prod': allowed are")


def test_both_settings_tables_list_every_setting():
    """README.md and docs/infrastructure.md document every setting users can set (none forgotten)."""
    for doc in ("README.md", "docs/infrastructure.md"):
        text = (PROJECT / doc).read_text()
        documented = set(re.findall(r"^\| `([a-z0-9_]+)`(?:, `([a-z0-9_]+)`)? \|", text, flags=re.M))
        names = {name for pair in documented for name in pair if name}
        assert set(SETTABLE) <= names, (doc, sorted(set(SETTABLE) - names))
