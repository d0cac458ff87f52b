"""cdk.json: the app command, no network calls from the CLI, and the current recommended feature flags."""

from __future__ import annotations

import json

from .helpers import PROJECT

CDK_JSON = json.loads((PROJECT / "cdk.json").read_text())
# The list `cdk init` writes, shipped with the pinned CLI (package.json), equal to aws-cdk-lib 2.275's own.
RECOMMENDED = PROJECT / "node_modules" / "aws-cdk" / "lib" / "init-templates" / ".recommended-feature-flags.json"


def test_app_command_runs_app_py_with_the_python_on_path():
    assert CDK_JSON["app"] == "python3 app.py"


def test_cli_makes_no_network_calls():
    assert CDK_JSON["notices"] is False
    assert CDK_JSON["context"]["cli-telemetry"] is False


def test_every_recommended_feature_flag_is_set_to_its_recommended_value():
    recommended = json.loads(RECOMMENDED.read_text())
    context = CDK_JSON["context"]
    assert {flag: context.get(flag) for flag in recommended} == recommended


def test_settings_have_named_dev_prod_and_example_stages():
    assert set(CDK_JSON["context"]["model-delivery"]["stages"]) == {"dev", "prod", "example"}
