"""The structure of .github/workflows/deploy.yml and ci.yml, parsed with PyYAML: triggers, who gets an OIDC token,
what each job runs and writes to its summary, the production gate, concurrency, timeouts, and actions pinned by
commit SHA. Each check is a function; the tests at the end show each one fails on a workflow that breaks it.
(`make lint` runs actionlint over both files; YAML 1.1 reads the key `on:` as True.)"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from stacks.settings.sections import DeployAccessSettings

from .helpers import PROJECT

WORKFLOWS = PROJECT / ".github" / "workflows"
DEPLOY = WORKFLOWS / "deploy.yml"
CI = WORKFLOWS / "ci.yml"
CONFIGURE_CREDENTIALS = "aws-actions/configure-aws-credentials"
# `uses: owner/repo[/path]@<40 hex> # vMAJOR[.MINOR[.PATCH]]`
PINNED = re.compile(r"^\s*(?:-\s+)?uses:\s+[\w.-]+/[\w./-]+@[0-9a-f]{40}\s+#\s+v\d+(?:\.\d+){0,2}\s*$")


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def triggers(workflow: dict) -> dict:
    return workflow[True]  # YAML 1.1: `on` is a boolean


def steps_using(job: dict, action: str) -> list[dict]:
    return [step for step in job["steps"] if step.get("uses", "").split("@")[0] == action]


def step_index(job: dict, predicate: Callable[[dict], bool]) -> int:
    found = [i for i, step in enumerate(job["steps"]) if predicate(step)]
    assert found, "no such step"
    return found[0]


def runs(text: str) -> Callable[[dict], bool]:
    return lambda step: text in step.get("run", "")


def assumes_role(job: dict) -> bool:
    return any("role-to-assume" in step.get("with", {}) for step in steps_using(job, CONFIGURE_CREDENTIALS))


# ---- the checks ---------------------------------------------------------------------------------------------

def check_top_level_permissions(workflow: dict) -> None:
    assert workflow["permissions"] == {"contents": "read"}, workflow["permissions"]


def check_id_token_only_where_a_role_is_assumed(workflow: dict) -> None:
    for name, job in workflow["jobs"].items():
        permissions = job.get("permissions", {})
        if assumes_role(job):
            assert permissions == {"id-token": "write", "contents": "read"}, (name, permissions)
        else:
            assert "id-token" not in permissions, (name, permissions)
        assert all(v in ("read", "none") for k, v in permissions.items() if k != "id-token"), (name, permissions)


def check_timeouts(workflow: dict) -> None:
    for name, job in workflow["jobs"].items():
        timeout = job.get("timeout-minutes")
        assert isinstance(timeout, int) and 0 < timeout <= 180, (name, timeout)


def check_pins(text: str) -> None:
    """Every `uses:` line pins a full commit SHA with the tag in a comment; and every parsed `uses` is on such a line
    (so no `uses` hides in a form the line check does not see)."""
    lines = [line for line in text.splitlines() if re.match(r"^\s*(?:-\s+)?uses:", line)]
    assert lines, "no uses: line"
    bad = [line.strip() for line in lines if not PINNED.match(line)]
    assert not bad, bad
    parsed = [step["uses"] for job in yaml.safe_load(text)["jobs"].values() for step in job.get("steps", [])
              if "uses" in step]
    assert len(parsed) == len(lines), (parsed, lines)


def check_triggers(workflow: dict) -> None:
    on = triggers(workflow)
    assert set(on) == {"pull_request", "push", "workflow_dispatch"}, on
    assert on["push"] == {"branches": ["main"]}, on["push"]
    stage = on["workflow_dispatch"]["inputs"]["stage"]
    assert stage["required"] is True and stage["type"] == "string", stage


def check_diff_job(workflow: dict) -> None:
    """Pull requests only: synth, then the diff role (no credentials before the synth), make diff into a file, and
    that file into the job summary even when the diff fails."""
    job = workflow["jobs"]["diff"]
    condition = job["if"]
    assert "github.event_name == 'pull_request'" in condition and "push" not in condition, condition
    assert "environment" not in job, "an environment would change the token's sub from pull_request"
    (credentials,) = steps_using(job, CONFIGURE_CREDENTIALS)
    assert credentials["with"]["role-to-assume"] == "${{ vars.MODEL_DELIVERY_DIFF_ROLE_ARN }}", credentials
    synth = step_index(job, runs("make synth"))
    assume = job["steps"].index(credentials)
    diff = step_index(job, runs("make diff"))
    assert synth < assume < diff, (synth, assume, diff)
    assert "tee diff.txt" in job["steps"][diff]["run"]
    summary = step_index(job, runs('>> "$GITHUB_STEP_SUMMARY"'))
    assert summary > diff and job["steps"][summary]["if"] == "always()"
    assert "diff.txt" in job["steps"][summary]["run"]


STAGE = "${{ inputs.stage || vars.MODEL_DELIVERY_STAGE }}"


def check_deploy_job(workflow: dict) -> None:
    """Push to main or a manual run, never a pull request: the stage's environment, the deploy role, make up, then
    the seed's table into the job summary even when make up fails."""
    job = workflow["jobs"]["deploy"]
    condition = job["if"]
    assert "pull_request" not in condition, condition
    assert "github.event_name == 'workflow_dispatch'" in condition, condition
    assert "github.event_name == 'push' && github.ref == 'refs/heads/main'" in condition, condition
    # The environment is the stage: prod deploys only in GitHub environment prod, whose reviewers gate it; the
    # deploy role trusts exactly that environment (github_environment defaults to the stage's name).
    assert job.get("environment") == STAGE and job["env"]["STAGE"] == STAGE, job.get("environment")
    (credentials,) = steps_using(job, CONFIGURE_CREDENTIALS)
    assert credentials["with"]["role-to-assume"] == "${{ vars.MODEL_DELIVERY_DEPLOY_ROLE_ARN }}", credentials
    up = step_index(job, runs("make up"))
    assert job["steps"].index(credentials) < up
    assert 'STAGE="$STAGE"' in job["steps"][up]["run"] and "tee up.log" in job["steps"][up]["run"]
    summary = step_index(job, runs('>> "$GITHUB_STEP_SUMMARY"'))
    assert summary > up and job["steps"][summary]["if"] == "always()"
    assert "up.log" in job["steps"][summary]["run"] and "STATUS" in job["steps"][summary]["run"]  # the seed table


def check_deploy_concurrency(workflow: dict) -> None:
    """One deploy per stage at a time, across triggers (not per ref), and a running deploy is never cancelled."""
    concurrency = workflow["jobs"]["deploy"]["concurrency"]
    assert concurrency == {"group": f"deploy-{STAGE}", "cancel-in-progress": False}, concurrency


DEPLOY_CHECKS = [check_top_level_permissions, check_id_token_only_where_a_role_is_assumed, check_timeouts,
                 check_triggers, check_diff_job, check_deploy_job, check_deploy_concurrency]
CI_CHECKS = [check_top_level_permissions, check_id_token_only_where_a_role_is_assumed, check_timeouts]


# ---- the workflows pass ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("check", DEPLOY_CHECKS, ids=lambda c: c.__name__)
def test_deploy_workflow(check):
    check(load(DEPLOY))


@pytest.mark.parametrize("check", CI_CHECKS, ids=lambda c: c.__name__)
def test_ci_workflow(check):
    check(load(CI))


@pytest.mark.parametrize("path", [DEPLOY, CI], ids=lambda p: p.name)
def test_every_action_is_pinned_by_sha_with_its_tag(path):
    check_pins(path.read_text())


def test_the_deploy_role_trusts_the_environment_the_deploy_job_runs_in():
    # deploy.yml runs its deploy job in the environment named after the stage; unless github_environment says
    # otherwise, the deploy-access stack's deploy role trusts exactly that environment's tokens.
    access = DeployAccessSettings(deploy_access=True, github_repository="my-org/model-delivery")
    assert [access.environment(stage) for stage in ("dev", "prod")] == ["dev", "prod"]
    assert load(DEPLOY)["jobs"]["deploy"]["environment"] == STAGE


def test_only_the_deploy_workflow_assumes_roles():
    assert [name for name, job in load(DEPLOY)["jobs"].items() if assumes_role(job)] == ["diff", "deploy"]
    assert not any(assumes_role(job) for job in load(CI)["jobs"].values())


# ---- each check fails on a workflow that breaks it ------------------------------------------------------------

def _set(path: list, value) -> Callable[[dict], None]:
    def change(workflow: dict) -> None:
        node = workflow
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return change


def _drop(path: list) -> Callable[[dict], None]:
    def change(workflow: dict) -> None:
        node = workflow
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]
    return change


def _remove_step(job: str, text: str) -> Callable[[dict], None]:
    def change(workflow: dict) -> None:
        steps = workflow["jobs"][job]["steps"]
        steps[:] = [s for s in steps if text not in s.get("run", "")]
    return change


def _assume(job: str, role: str) -> Callable[[dict], None]:
    def change(workflow: dict) -> None:
        (credentials,) = steps_using(workflow["jobs"][job], CONFIGURE_CREDENTIALS)
        credentials["with"]["role-to-assume"] = role
    return change


def _swap_steps(job: str, first: str, second: str) -> Callable[[dict], None]:
    def change(workflow: dict) -> None:
        steps = workflow["jobs"][job]["steps"]
        i = next(n for n, s in enumerate(steps) if first in s.get("run", "") or first in s.get("uses", ""))
        j = next(n for n, s in enumerate(steps) if second in s.get("run", "") or second in s.get("uses", ""))
        steps[i], steps[j] = steps[j], steps[i]
    return change


BROKEN = {
    "write-all at the top": (check_top_level_permissions, _set(["permissions"], "write-all")),
    "id-token at the top": (check_top_level_permissions, _set(["permissions", "id-token"], "write")),
    "no id-token on deploy": (check_id_token_only_where_a_role_is_assumed, _drop(["jobs", "deploy", "permissions"])),
    "contents write on diff": (check_id_token_only_where_a_role_is_assumed,
                               _set(["jobs", "diff", "permissions", "contents"], "write")),
    "no timeout": (check_timeouts, _drop(["jobs", "diff", "timeout-minutes"])),
    "timeout as an expression": (check_timeouts, _set(["jobs", "deploy", "timeout-minutes"], "${{ 600 }}")),
    "push to any branch": (check_triggers, _set([True, "push"], None)),
    "optional stage": (check_triggers, _set([True, "workflow_dispatch", "inputs", "stage", "required"], False)),
    "diff on push": (check_diff_job, _set(["jobs", "diff", "if"], "github.event_name == 'push'")),
    "diff with the deploy role": (check_diff_job, _assume("diff", "${{ vars.MODEL_DELIVERY_DEPLOY_ROLE_ARN }}")),
    "diff without synth": (check_diff_job, _remove_step("diff", "make synth")),
    "credentials before synth": (check_diff_job, _swap_steps("diff", "make synth", CONFIGURE_CREDENTIALS)),
    "diff not in the summary": (check_diff_job, _remove_step("diff", "GITHUB_STEP_SUMMARY")),
    "deploy on a pull request": (check_deploy_job,
                                 _set(["jobs", "deploy", "if"], "github.event_name == 'pull_request'")),
    "deploy without environment": (check_deploy_job, _drop(["jobs", "deploy", "environment"])),
    "deploy in a fixed environment": (check_deploy_job, _set(["jobs", "deploy", "environment"], "dev")),
    "deploy without make up": (check_deploy_job, _remove_step("deploy", "make up")),
    "no seed summary": (check_deploy_job, _remove_step("deploy", "GITHUB_STEP_SUMMARY")),
    "cancel a running deploy": (check_deploy_concurrency,
                                _set(["jobs", "deploy", "concurrency", "cancel-in-progress"], True)),
    "concurrency per ref": (check_deploy_concurrency,
                            _set(["jobs", "deploy", "concurrency", "group"], "deploy-${{ github.ref }}")),
}


@pytest.mark.parametrize("name", BROKEN)
def test_each_check_fails_on_a_broken_workflow(name):
    check, breaks = BROKEN[name]
    workflow = copy.deepcopy(load(DEPLOY))
    check(copy.deepcopy(workflow))  # passes before the change: the failure below is the change's
    breaks(workflow)
    with pytest.raises(AssertionError):
        check(workflow)


@pytest.mark.parametrize("replace, by", [
    ("@d23441a48e516b6c34aea4fa41551a30e30af803 # v6.1.0", "@v6"),  # a tag
    ("@d23441a48e516b6c34aea4fa41551a30e30af803 # v6.1.0", "@d23441a48e516b6c34aea4fa41551a30e30af803"),  # no tag
    ("@d23441a48e516b6c34aea4fa41551a30e30af803 # v6.1.0", "@d23441a # v6.1.0"),  # a short SHA
    ("@ece7cb06caefa5fff74198d8649806c4678c61a1 # v6.3.0", "@ece7cb06caefa5fff74198d8649806c4678c61a1 # latest"),
])
def test_the_pin_check_fails_on_a_tag_a_short_sha_or_a_missing_tag_comment(replace, by):
    text = DEPLOY.read_text()
    assert replace in text
    with pytest.raises(AssertionError):
        check_pins(text.replace(replace, by, 1))


def test_the_pin_check_sees_a_uses_in_flow_style():
    text = DEPLOY.read_text().replace(
        "    steps:\n", "    steps:\n      - {uses: actions/checkout@v6}\n", 1)
    with pytest.raises(AssertionError):
        check_pins(text)


# ---- the docs match the workflow --------------------------------------------------------------------------------

CI_DEPLOY_DOC = PROJECT / "docs" / "ci-deploy.md"


def setup_steps(text: str) -> list[int]:
    section = text.split("## One-time setup", 1)[1].split("\n## ", 1)[0]
    return [int(m[1]) for m in re.finditer(r"^(\d+)\. ", section, re.MULTILINE)]


def test_the_setup_is_at_most_ten_numbered_steps():
    steps = setup_steps(CI_DEPLOY_DOC.read_text())
    assert steps == list(range(1, len(steps) + 1)) and 1 <= len(steps) <= 10, steps
    assert setup_steps("## One-time setup\n" + "".join(f"{n}. x\n" for n in range(1, 12))) == list(range(1, 12))


def test_every_variable_the_workflow_reads_is_in_the_setup():
    variables = set(re.findall(r"vars\.([A-Z0-9_]+)", DEPLOY.read_text()))
    assert variables == {"MODEL_DELIVERY_STAGE", "MODEL_DELIVERY_DIFF_STAGE", "MODEL_DELIVERY_DIFF_ROLE_ARN",
                         "MODEL_DELIVERY_DEPLOY_ROLE_ARN"}, variables
    setup = CI_DEPLOY_DOC.read_text().split("## One-time setup", 1)[1].split("\n## ", 1)[0]
    assert not [v for v in variables if f"`{v}`" not in setup]
