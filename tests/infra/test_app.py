"""app.py end to end as `cdk synth` runs it (context in CDK_CONTEXT_JSON, output dir in CDK_OUTDIR):
the real catalog and seed-runner code, cdk-nag enforced, no account, no credentials, no Docker.

The ECR image source is used so that the run does not depend on container/Dockerfile (an image asset
is only staged at synth, but its Dockerfile must exist); `make synth` covers the default asset path.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from .helpers import PROJECT, cdk_json_context

CFN_LINT = str(Path(sys.executable).parent / "cfn-lint")


def test_app_py_synthesizes_environment_agnostic_nag_clean_lint_clean_templates(tmp_path):
    context = {**cdk_json_context(), "image_source": "ecr", "image_tag": "v1", "apps.demo.delivery_mode": "efs",
               "seed_on_deploy": "true"}
    env = {key: value for key, value in os.environ.items()
           if key not in ("CDK_DEFAULT_ACCOUNT", "CDK_DEFAULT_REGION")}
    env.update({"CDK_CONTEXT_JSON": json.dumps(context), "CDK_OUTDIR": str(tmp_path),
                "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20"})
    result = subprocess.run([sys.executable, "app.py"], cwd=PROJECT, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    templates = sorted(tmp_path.glob("*.template.json"))
    assert [t.name for t in templates] == ["ModelDelivery-dev-Network.template.json",
                                           "ModelDelivery-dev-Service.template.json",
                                           "ModelDelivery-dev-Storage.template.json"]
    network = json.loads(templates[0].read_text())
    assert "Fn::GetAZs" in json.dumps(network)  # no account: AZs resolved at deploy time
    lint = subprocess.run([CFN_LINT, "--format", "parseable", "--ignore-checks", "W3005", "--",
                           *map(str, templates)], capture_output=True, text=True, timeout=300)
    assert lint.returncode == 0, lint.stdout + lint.stderr
