"""cfn-lint over every synthesized template of every tested configuration: no errors, no warnings.

Ignored, on purpose (both come from how CDK renders templates, not from a choice made here):
- W3005 "dependency already enforced by a GetAtt": CDK adds an explicit DependsOn on a Lambda
  function's role (and its default policy) next to the GetAtt of the role; the edge is redundant
  and harmless.
- W3010 "avoid hardcoding availability zones": a stack with a known account and region gets the AZ
  names CDK looked up for that account (cached in cdk.context.json). Without an account, as in an
  offline `make synth`, CDK writes Fn::GetAZs instead and the warning does not arise.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

IGNORED = ["W3005", "W3010"]
CFN_LINT = str(Path(sys.executable).parent / "cfn-lint")  # the console script installed next to this Python


def test_templates_pass_cfn_lint(s3_built, efs_built, prod_built, s3files_built, tmp_path):
    paths = []
    for config, built in (("s3", s3_built), ("efs", efs_built), ("prod-ecr", prod_built), ("s3files", s3files_built)):
        for stack, template in built.templates().items():
            path = tmp_path / f"{config}-{stack}.template.json"
            path.write_text(json.dumps(template))
            paths.append(str(path))
    result = subprocess.run([CFN_LINT, "--format", "parseable",
                             "--ignore-checks", *IGNORED, "--", *paths],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


def test_cfn_lint_does_report_problems(tmp_path):
    # The check above must be able to fail: a template with a known error makes cfn-lint exit non-zero.
    bad = tmp_path / "bad.template.json"
    bad.write_text(json.dumps({"Resources": {"Queue": {"Type": "AWS::SQS::Queue",
                                                       "Properties": {"VisibilityTimeout": "often"}}}}))
    result = subprocess.run([CFN_LINT, "--format", "parseable", "--", str(bad)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "E3012" in result.stdout
