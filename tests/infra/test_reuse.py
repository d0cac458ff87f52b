"""Reuse: the construct library in someone else's app.

The README's "Add model delivery to your own app" block is synthesized exactly as written, inside a
cdk.Stage of a second app made by `cdk init` (its own, fresh cdk.json) with cdk-nag on, through the real
CDK CLI; then again in a fresh virtual environment where the two packages are installed from this
repository (nothing downloaded: the environment sees the test environment's packages through a .pth).
The constructs' props are checked at construction with one-line errors, and an app without the feature
flag they need is told which flag to set.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs

from model_delivery import MirrorOptions, ModelDelivery, ModelDeliveryError, ModelStore, SeedingTask, SigningTask
from model_delivery.seeding import AutoSeed, SeedRunner

from .checkov import failures, run_checkov, skipped
from .helpers import PROJECT, cdk_json_context

CDK = PROJECT / "node_modules" / ".bin" / "cdk"
QUIET = {"CDK_DISABLE_VERSION_CHECK": "true", "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20"}


def readme_block() -> str:
    text = (PROJECT / "README.md").read_text()
    section = text.split("## Add model delivery to your own app", 1)[1].split("\n## ", 1)[0]
    [block] = re.findall(r"```python\n(.*?)\n```", section, flags=re.S)
    return block


CONSUMER_APP = '''\
"""A consumer app: its own VPC and cluster (imported: they exist already), the README block, cdk-nag on."""
import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from cdk_nag import AwsSolutionsChecks
{imports}


class TeamStack(cdk.Stack):
    def __init__(self, scope, id, **kwargs):
        super().__init__(scope, id, **kwargs)
        vpc = ec2.Vpc.from_vpc_attributes(self, "Vpc", vpc_id="vpc-0123456789abcdef0",
                                          availability_zones=["eu-west-1a", "eu-west-1b"],
                                          private_subnet_ids=["subnet-0aaaaaaaaaaaaaaaa", "subnet-0bbbbbbbbbbbbbbbb"])
        cluster = ecs.Cluster.from_cluster_attributes(self, "Cluster", cluster_name="team-cluster", vpc=vpc)
{body}


app = cdk.App()
stage = cdk.Stage(app, "Prod", env=cdk.Environment(account="111111111111", region="eu-west-1"))
TeamStack(stage, "Inference")
cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
app.synth()
'''


@pytest.fixture(scope="module")
def consumer(tmp_path_factory) -> Path:
    """A second app, as `cdk init app --language=python` makes it (offline), with the README block."""
    folder = tmp_path_factory.mktemp("team") / "team"
    folder.mkdir()
    init = subprocess.run([str(CDK), "init", "app", "--language=python", "--generate-only"], cwd=folder,
                          capture_output=True, text=True, timeout=300, env={**os.environ, **QUIET})
    assert init.returncode == 0, init.stderr
    lines = readme_block().splitlines()
    imports = [line for line in lines if line.startswith(("from ", "import "))]  # the block's, at module level
    body = "\n".join(line for line in lines if line not in imports)
    (folder / "app.py").write_text(CONSUMER_APP.format(imports="\n".join(imports),
                                                       body=textwrap.indent(body.strip("\n"), " " * 8)))
    return folder


def synth_with_the_cli(folder: Path, python_dir: Path) -> tuple[subprocess.CompletedProcess, Path]:
    out = folder / "cdk.out"
    env = {**os.environ, **QUIET, "PATH": f"{python_dir}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run([str(CDK), "synth", "--quiet", "--output", str(out)], cwd=folder, env=env,
                            capture_output=True, text=True, timeout=600)
    return result, out


def test_the_readme_example_synthesizes_in_a_stage_of_a_fresh_cdk_init_app_with_nag_on(consumer, tmp_path):
    context = json.loads((consumer / "cdk.json").read_text())["context"]
    assert "model-delivery" not in context  # the consumer's own cdk.json, nothing of ours
    result, out = synth_with_the_cli(consumer, Path(sys.executable).parent)
    assert result.returncode == 0, result.stderr[-3000:]
    [template_file] = (out / "assembly-Prod").glob("ProdInference*.template.json")
    template = json.loads(template_file.read_text())
    types = [r["Type"] for r in template["Resources"].values()]
    assert types.count("AWS::S3::Bucket") == 2 and "AWS::KMS::Key" in types  # the store: models + access logs
    [task] = [r["Properties"] for r in template["Resources"].values() if r["Type"] == "AWS::ECS::TaskDefinition"]
    containers = {c["Name"]: c for c in task["ContainerDefinitions"]}
    assert set(containers) == {"app", "model-pull"}
    assert containers["app"]["DependsOn"] == [{"ContainerName": "model-pull", "Condition": "SUCCESS"}]
    assert containers["app"]["Image"] == "ghcr.io/example/flake-api:1.4.2"  # the team's image, untouched
    env = {e["Name"]: e["Value"] for e in containers["app"]["Environment"]}
    assert env == {"MODEL_PATH": "/opt/models"}
    pull_env = {e["Name"]: e["Value"] for e in containers["model-pull"]["Environment"]}
    assert pull_env["MODELSYNC_MODELS"] == "SEG_M2F_GrapheneL@3f9c1a7e5b2d4c60,CLS_AMM_GrapheneL"
    # checkov-clean in someone else's app too; the only skip is the access-log bucket's own logging. The
    # team's own app log group (aws_logs(stream_prefix="app") in the block: no retention, no key) is theirs.
    (tmp_path / template_file.name).write_text(template_file.read_text())
    report = run_checkov(tmp_path)
    theirs = {f for f in failures(report) if f.startswith(("CKV_AWS_66 AWS::Logs::LogGroup.TaskappLogGroup",
                                                             "CKV_AWS_158 AWS::Logs::LogGroup.TaskappLogGroup"))}
    assert len(theirs) == 2 and sorted(set(failures(report)) - theirs) == [] and report["summary"]["passed"] > 50
    assert {check for _, _, check in skipped(report)} == {"CKV_AWS_18"}


def test_a_fresh_virtual_environment_installs_the_packages_and_synthesizes_the_example(consumer, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    site = next((venv / "lib").glob("python3*/site-packages"))
    # aws-cdk-lib, constructs, PyYAML, cdk-nag and setuptools come from the test environment (no download);
    # the editable installs of this repository in it are not visible there (their .pth files are not read).
    test_site = next(p for p in sys.path if p.endswith("site-packages") and Path(p).is_dir())
    (site / "test-environment.pth").write_text(test_site + "\n")
    python = venv / "bin" / "python"
    install = subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index",
                              "--no-build-isolation", str(PROJECT / "container"), str(PROJECT)],
                             capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert install.returncode == 0, install.stderr[-3000:]
    where = subprocess.run([str(python), "-c", "import model_delivery, modelsync; from model_delivery.seeding "
                            "import SEED_RUNNER_DIR; from model_delivery.catalog import DEFAULT_CATALOG; "
                            "from model_delivery.notifier import TASK_NOTIFIER_DIR; "
                            "print(model_delivery.__file__, modelsync.__file__, SEED_RUNNER_DIR / 'handler.py', "
                            "TASK_NOTIFIER_DIR / 'handler.py', DEFAULT_CATALOG)"], capture_output=True, text=True,
                           timeout=120, cwd=tmp_path)
    assert where.returncode == 0, where.stderr[-2000:]
    paths = [Path(p) for p in where.stdout.split()]
    assert all(str(p).startswith(str(site)) and p.exists() for p in paths), paths  # installed, data included
    result, _ = synth_with_the_cli(consumer, venv / "bin")
    assert result.returncode == 0, result.stderr[-3000:]


# ---- props are checked at construction -----------------------------------------------------------

def stack() -> cdk.Stack:
    app = cdk.App(context={k: v for k, v in cdk_json_context().items() if k.startswith("@aws-cdk")})
    return cdk.Stack(app, "S", env=cdk.Environment(account="111111111111", region="eu-west-1"))


def task_and_app(scope):
    task = ecs.FargateTaskDefinition(scope, "Task", cpu=1024, memory_limit_mib=4096)
    app = task.add_container("app", image=ecs.ContainerImage.from_registry("example/app:1"))
    return task, app


MODELSYNC = ecs.ContainerImage.from_registry("example/modelsync:0.2.0")


@pytest.mark.parametrize("props, fragment", [
    ({"mode": "ftp"}, "ModelDelivery mode = 'ftp' is not allowed: use 's3' (each task pulls"),
    ({"models": []}, "ModelDelivery models is empty"),
    ({"models": ["a@b", "a"]}, "ModelDelivery models names a more than once"),
    ({"models": ["x@../y"]}, "ModelDelivery models = 'x@../y' is not allowed"),
    ({"mode": "efs"}, "ModelDelivery mode 'efs' needs the EFS mirror: create the ModelStore with mirror="),
    ({"models_path": "/models/x"}, "ModelDelivery models_path = '/models/x' is not allowed"),
    ({"models_path": "/var/lib/modelsync"}, "contains nor lies inside /var/lib/modelsync/view"),
    ({"layout": "maskterial", "models": ["paddleocr"]}, "layout 'maskterial' cannot place model 'paddleocr'"),
    ({"layout": "nope"}, "ModelDelivery layout = 'nope' is not allowed: unknown layout"),
])
def test_model_delivery_props_are_checked_with_one_line_errors(props, fragment):
    scope = stack()
    task, app = task_and_app(scope)
    kwargs = {"task_definition": task, "app_container": app, "store": ModelStore(scope, "Store"),
              "image": MODELSYNC, "models": ["SEG_M2F_GrapheneL"], **props}
    with pytest.raises(ModelDeliveryError) as caught:
        ModelDelivery(scope, "Delivery", **kwargs)
    assert fragment in str(caught.value) and "\n" not in str(caught.value)


def test_the_app_container_must_be_in_the_given_task_definition():
    scope = stack()
    task, _ = task_and_app(scope)
    other = ecs.FargateTaskDefinition(scope, "Other", cpu=256, memory_limit_mib=512)
    stray = other.add_container("stray", image=MODELSYNC)
    with pytest.raises(ModelDeliveryError, match="app_container 'stray' belongs to another task definition"):
        ModelDelivery(scope, "Delivery", task_definition=task, app_container=stray, store=ModelStore(scope, "Store"),
                      image=MODELSYNC, models=["SEG_M2F_GrapheneL"])


def test_seeding_and_store_props_are_checked_with_one_line_errors():
    scope = stack()
    store = ModelStore(scope, "Store")
    with pytest.raises(ModelDeliveryError, match=r"^SeedingTask memory_mib = 100 is not allowed: use 2048 to 8192"):
        SeedingTask(scope, "Seed", store=store, image=MODELSYNC, cpu=1024, memory_mib=100)
    with pytest.raises(ModelDeliveryError, match="SigningTask mirror_pins keep versions in the EFS mirror"):
        SigningTask(scope, "Sign2", store=store, image=MODELSYNC, mirror_pins=["a@0123456789abcdef"])
    with pytest.raises(ModelDeliveryError, match="SigningTask mirror_pins = 'a' is not allowed"):
        SigningTask(scope, "Sign3", store=store, image=MODELSYNC, mirror_pins=["a"])
    with pytest.raises(ModelDeliveryError, match="SeedingTask log_retention_days = 2 is not allowed"):
        SeedingTask(scope, "Seed3", store=store, image=MODELSYNC, log_retention_days=2)
    task = SeedingTask(scope, "Seed4", store=store, image=MODELSYNC)
    signing = SigningTask(scope, "Sign4", store=store, image=MODELSYNC)
    cluster = ecs.Cluster(scope, "Cluster", vpc=ec2.Vpc(scope, "Vpc"))
    with pytest.raises(ModelDeliveryError, match="SeedRunner subnets is empty"):
        SeedRunner(scope, "Runner", cluster=cluster, seeding=task, signing=signing, subnets=[],
                   security_group=ec2.SecurityGroup(scope, "Sg", vpc=cluster.vpc))
    runner = SeedRunner(scope, "Runner2", cluster=cluster, seeding=task, signing=signing,
                        subnets=cluster.vpc.private_subnets, security_group=ec2.SecurityGroup(scope, "Sg2",
                                                                                               vpc=cluster.vpc))
    with pytest.raises(ModelDeliveryError, match="AutoSeed fingerprint 'abc' is not allowed"):
        AutoSeed(scope, "Auto", runner=runner, fingerprint="abc")
    with pytest.raises(ModelDeliveryError, match="ModelStore access_log_days = 0 is not allowed"):
        ModelStore(scope, "Store2", access_log_days=0)
    vpc = cluster.vpc
    mirrored = ModelStore(scope, "Store3", mirror=MirrorOptions(vpc=vpc, security_group=ec2.SecurityGroup(
        scope, "Fs", vpc=vpc)))
    assert mirrored.mirror is not None and mirrored.require_mirror("x") is mirrored.mirror


def test_an_app_without_the_needed_feature_flag_is_told_which_flag_to_set():
    app = cdk.App()  # no feature flags at all
    scope = cdk.Stack(app, "S")
    with pytest.raises(ModelDeliveryError) as caught:
        ModelStore(scope, "Store")
    assert str(caught.value) == (
        "ModelStore needs the feature flag @aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy set to true in "
        "cdk.json's context (the access-log bucket receives S3 server access logs through a bucket policy, not "
        "an ACL); `cdk init` sets it for new apps")
