"""Preflight: what a deploy of a stage needs from the account, checked before CloudFormation finds out.

    python -m tools.preflight --stage dev [--region R] [--skip CHECK ...]      # make preflight STAGE=dev

One line per check: `ok   NAME: what was found`, `FAIL NAME: the problem; the fix`, `skip NAME: why it does not
apply`. Exit codes: 0 nothing failed; 1 a check failed; 2 bad usage or settings (one line on stderr).

context.py   what a check is given (settings, clients, the deployed stacks' outputs) and returns
account.py   credentials, CDK bootstrap, service-linked roles, Lambda concurrency
resources.py certificates, images, pins, the VPC, Docker
quotas.py    Fargate vCPU, EFS file systems, load balancers
cli.py       the command
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import TextIO

from botocore.exceptions import BotoCoreError, ClientError

from modelsync.errors import ModelsyncError
from tools.preflight import account, quotas, resources
from tools.preflight.context import FAIL, OK, SKIP, Context, Result, fail, skip
from tools.seed import SeedError


@dataclass(frozen=True)
class Check:
    name: str
    summary: str  # for --help
    run: Callable[[Context], Result]
    aws: bool = True  # needs working credentials of the stage's account


CHECKS = (
    Check("credentials", "credentials work; their account and region are the stage's", account.credentials),
    Check("bootstrap", "the CDKToolkit stack exists and its version is one the templates accept", account.bootstrap),
    Check("service-linked-roles", "ECS and Application Auto Scaling have their roles", account.service_linked_roles),
    Check(
        "lambda-concurrency", "reserved concurrency leaves Lambda its unreserved minimum", account.lambda_concurrency
    ),
    Check("certificates", "every certificate_arn exists, in the stage's region, ISSUED", resources.certificates),
    Check("image-tag", "image_source ecr: image_tag is in the project's repository", resources.image_tag),
    Check("app-images", "every app image in ECR exists", resources.app_images),
    Check("pins", "every pinned NAME@VERSION is in the bucket (make check-pins)", resources.pins),
    Check("vpc", "vpc_id: private subnets with NAT in 2 AZs, S3 gateway endpoint", resources.vpc),
    Check("docker", "image_source asset: a Docker engine answers", resources.docker, aws=False),
    Check("fargate-vcpu", "every app at max_capacity plus seeding fit the Fargate vCPU quota", quotas.fargate_vcpu),
    Check("efs-file-systems", "room for the storage stack's file system", quotas.efs_file_systems),
    Check("load-balancers", "room for one Application Load Balancer per app with an ingress", quotas.load_balancers),
)
CHECK_NAMES = tuple(check.name for check in CHECKS)


def run_check(check: Check, ctx: Context) -> Result:
    """The check's result; an AWS or S3 error it did not expect is its FAIL line, never a traceback."""
    try:
        return check.run(ctx)
    except ClientError as err:
        error = err.response.get("Error", {})
        code, message = error.get("Code", "Error"), error.get("Message", str(err))
        if "AccessDenied" in code or "UnauthorizedOperation" in code:
            return fail(
                f"access denied to {err.operation_name} ({message}): let this role call it, or pass --skip {check.name}"
            )
        return fail(f"{err.operation_name} failed: {code}: {message}")
    except (SeedError, ModelsyncError) as err:
        return fail(str(err))
    except BotoCoreError as err:
        return fail(f"AWS call failed: {err}")


def line(name: str, result: Result) -> str:
    return f"{result.status:<4} {name}: {result.message}"


def run_checks(ctx: Context, out: TextIO, skipped: Collection[str] = ()) -> list[tuple[str, Result]]:
    """Run every check not skipped, printing its line as it is known."""
    results = []
    credentials_failed = False
    for check in CHECKS:
        if check.name in skipped:
            result = skip("--skip")
        elif check.aws and credentials_failed:
            # Checks in another account, or with credentials that do not work, would only add noise.
            result = skip("not run: fix the credentials first")
        else:
            result = run_check(check, ctx)
        credentials_failed = credentials_failed or (check.name == "credentials" and result.status == FAIL)
        results.append((check.name, result))
        print(line(check.name, result), file=out, flush=True)
    return results


def summary(results: list[tuple[str, Result]]) -> str:
    counts = {status: sum(1 for _, result in results if result.status == status) for status in (OK, FAIL, SKIP)}
    return f"{counts[OK]} ok, {counts[FAIL]} failed, {counts[SKIP]} skipped"


def failed(results: list[tuple[str, Result]]) -> list[str]:
    return [name for name, result in results if result.status == FAIL]
