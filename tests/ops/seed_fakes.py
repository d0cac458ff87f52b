"""Constants and helpers shared by the seed runner and operator command tests.

Everything AWS here is botocore's Stubber on real API shapes: requests are checked against the
service models and expected parameters, responses are validated against the output shapes.
"""

from __future__ import annotations

import functools
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import boto3
import pytest

REPO = Path(__file__).resolve().parents[2]
HANDLER_PATH = REPO / "lambdas" / "seed_runner" / "handler.py"

REGION = "eu-west-1"
ACCOUNT = "111111111111"
# Names as CloudFormation generates them (the stacks set none): <stack>-<logical id>-<suffix>.
CLUSTER_NAME = "ModelDelivery-dev-Service-ClusterEB0386A7-Xy12Ab34Cd56"
CLUSTER_ARN = f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/{CLUSTER_NAME}"
TASK_DEFINITION_ARN = f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/ModelDeliverydevSeed:3"
TASK_ID = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
TASK_ARN = f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/{CLUSTER_NAME}/{TASK_ID}"
LOG_GROUP = "ModelDelivery-dev-Service-SeedingLogsAC8619CF-Ef78Gh90Ij12"

RUNNER_ENV = {
    "CLUSTER_ARN": CLUSTER_ARN,
    "TASK_DEFINITION_ARN": TASK_DEFINITION_ARN,
    "SUBNET_IDS": "subnet-0aaa1111, subnet-0bbb2222",
    "SECURITY_GROUP_IDS": "sg-0ccc3333",
    "CONTAINER_NAME": "seed",
    "LOG_GROUP_NAME": LOG_GROUP,
    "LOG_STREAM_PREFIX": "seed",
}

# Optional: the catalog's entry names (here a part of the bundled catalog, in its order).
OPTIONAL_RUNNER_ENV = ("CATALOG_NAMES", "SIGN_TASK_DEFINITION_ARN", "SIGN_CONTAINER_NAME", "SIGN_LOG_GROUP_NAME",
                       "SIGN_LOG_STREAM_PREFIX")
CATALOG_NAMES = ("SEG_M2F_Synthetic_Data", "SEG_M2F_GrapheneL", "SEG_M2F_WSe2", "CLS_AMM_GrapheneL",
                 "CLS_GMM_GrapheneL", "PP_L2_material_agnostic", "paddleocr")


@functools.cache
def _session() -> boto3.Session:
    # One session for all tests: loading the service models is the slow part of a client.
    return boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                         region_name=REGION)


def make_client(service: str, region: str = REGION):
    return _session().client(service, region_name=region)


def load_handler(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], path: Path = HANDLER_PATH,
                 variables: tuple[str, ...] = (*RUNNER_ENV, *OPTIONAL_RUNNER_ENV)) -> ModuleType:
    """Import a Lambda's handler.py by path (lambdas/* are no packages; default the seed runner's) with
    exactly `env` of its `variables` set.

    Each call is a fresh import, i.e. a fresh Lambda cold start.
    """
    for name in variables:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    spec = importlib.util.spec_from_file_location(f"{path.parent.name}_handler", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


def run_task_response(task_arn: str = TASK_ARN) -> dict:
    """A RunTask answer as ECS gives it right after the call (task still PROVISIONING)."""
    return {
        "tasks": [{
            "taskArn": task_arn,
            "clusterArn": CLUSTER_ARN,
            "taskDefinitionArn": TASK_DEFINITION_ARN,
            "lastStatus": "PROVISIONING",
            "desiredStatus": "RUNNING",
            "launchType": "FARGATE",
            "platformVersion": "1.4.0",
            "startedBy": "seed-runner",
            "containers": [{"name": "seed", "lastStatus": "PENDING", "taskArn": task_arn}],
        }],
        "failures": [],
    }


def expected_run_task(only: str | None = None, client_token: str | None = None) -> dict:
    """The exact RunTask request the seed runner must send for RUNNER_ENV."""
    request = {
        "cluster": CLUSTER_ARN,
        "taskDefinition": TASK_DEFINITION_ARN,
        "launchType": "FARGATE",
        "platformVersion": "1.4.0",
        "count": 1,
        "networkConfiguration": {"awsvpcConfiguration": {
            "subnets": ["subnet-0aaa1111", "subnet-0bbb2222"],
            "securityGroups": ["sg-0ccc3333"],
            "assignPublicIp": "DISABLED",
        }},
        "startedBy": "seed-runner",
        "propagateTags": "TASK_DEFINITION",
    }
    if client_token is not None:
        request["clientToken"] = client_token
    if only is not None:
        request["overrides"] = {"containerOverrides": [{
            "name": "seed",
            "environment": [{"name": "MODELSYNC_SEED_ONLY", "value": only}],
        }]}
    return request
