"""Checks of the account itself: the credentials, the CDK bootstrap, the service-linked roles, Lambda concurrency."""

from __future__ import annotations

from botocore.exceptions import ClientError, NoCredentialsError, PartialCredentialsError

from model_delivery.notifier import NOTIFIER_CONCURRENCY
from model_delivery.seeding import SEED_RUNNER_CONCURRENCY
from stacks.naming import stack_id
from tools.preflight.context import Context, Result, fail, ok
from tools.seed import CREDENTIAL_ERROR_CODES, find_stack

BOOTSTRAP_STACK = "CDKToolkit"
# aws-cdk-lib 2.275.0, core/lib/stack-synthesizers/default-synthesizer.js: MIN_BOOTSTRAP_STACK_VERSION = 6 (every
# template's CheckBootstrapVersion rule refuses versions 1-5) and MIN_LOOKUP_ROLE_BOOTSTRAP_STACK_VERSION = 8 (the
# lookup role the CLI uses for context lookups: vpc_id's VPC, the AZs of a stage with an account). Seen in the
# synthesized templates and manifest.json too; tests/ops/test_preflight.py synthesizes a stack to keep them honest.
TEMPLATE_MIN_VERSION = 6
LOOKUP_MIN_VERSION = 8
# Stack states in which the bootstrap resources cannot be relied on.
BROKEN_STATES = {"CREATE_FAILED", "ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "DELETE_FAILED", "UPDATE_ROLLBACK_FAILED"}

# The roles ECS and Application Auto Scaling act through, with their service principals (ECS API reference,
# CreateCluster; Application Auto Scaling guide, services-that-can-integrate-ecs). Both services create them on
# first use only when the caller may call iam:CreateServiceLinkedRole: CloudFormation's role often may not.
SERVICE_LINKED_ROLES = (
    ("AWSServiceRoleForECS", "ecs.amazonaws.com"),
    ("AWSServiceRoleForApplicationAutoScaling_ECSService", "ecs.application-autoscaling.amazonaws.com"),
)

# Lambda guide, configuration-concurrency: "You can reserve up to the Unreserved account concurrency value minus
# 100". (Accounts whose whole quota is below 100 report that quota as the minimum, e.g. [10]: any reservation
# fails there as well.)
UNRESERVED_FLOOR = 100
RESERVATIONS = {"seed runner": SEED_RUNNER_CONCURRENCY, "task notifier": NOTIFIER_CONCURRENCY}


def credentials(ctx: Context) -> Result:
    """The credentials work and belong to the stage's account; preflight looks at the stage's region."""
    try:
        identity = ctx.identity()
    except (NoCredentialsError, PartialCredentialsError):
        return fail("no AWS credentials found: set AWS_PROFILE, run aws sso login, or export AWS_ACCESS_KEY_ID")
    except ClientError as err:
        code = err.response.get("Error", {}).get("Code", "")
        if code in CREDENTIAL_ERROR_CODES:
            return fail(f"AWS rejected the credentials ({code}): refresh them (aws sso login, or new keys) and retry")
        raise
    stage = ctx.settings.stage
    account = str(identity["Account"])
    problems = []
    if stage.account and account != stage.account:
        problems.append(f"the credentials are for account {account}, stage {stage.name} deploys to {stage.account}")
    if stage.region and ctx.region != stage.region:
        problems.append(f"preflight looks at region {ctx.region}, stage {stage.name} deploys to {stage.region}")
    if problems:
        return fail(
            "; ".join(problems) + ": use credentials of the stage's account (AWS_PROFILE) and its region (drop "
            "--region), or correct 'account'/'region' of the stage in cdk.json"
        )
    unset = "" if stage.account else f" (stage {stage.name} sets no account: it deploys to this one)"
    return ok(f"{identity['Arn']}, account {account}, region {ctx.region}{unset}")


def bootstrap(ctx: Context) -> Result:
    """CDKToolkit exists, is usable, and its version is one the synthesized templates accept."""
    command = f"npx cdk bootstrap aws://{ctx.account()}/{ctx.region}"
    stack = find_stack(ctx.client("cloudformation"), BOOTSTRAP_STACK)
    if stack is None:
        return fail(
            f"no {BOOTSTRAP_STACK} stack in {ctx.region}: this account and region were never bootstrapped; "
            f"run {command}"
        )
    status = stack["StackStatus"]
    if status in BROKEN_STATES or status.endswith("_IN_PROGRESS"):
        return fail(
            f"{BOOTSTRAP_STACK} is {status}: wait for it to finish, or fix it in the CloudFormation console "
            f"and run {command} again"
        )
    version = _bootstrap_version(ctx, stack)
    if version is None:
        return fail(
            f"{BOOTSTRAP_STACK} has no version (SSM /cdk-bootstrap/{ctx.qualifier}/version nor output "
            f"BootstrapVersion): it was made by another tool or another qualifier; run {command}"
        )
    if version < TEMPLATE_MIN_VERSION:
        return fail(
            f"bootstrap version {version}, the templates need {TEMPLATE_MIN_VERSION} or later (CloudFormation "
            f"refuses them: 'CDK bootstrap stack version {TEMPLATE_MIN_VERSION} required'); run {command}"
        )
    if version < LOOKUP_MIN_VERSION:
        return ok(
            f"bootstrap version {version} (templates need {TEMPLATE_MIN_VERSION}); below {LOOKUP_MIN_VERSION} "
            f"the CLI's context lookups fall back to your own credentials: {command} updates it"
        )
    return ok(
        f"{BOOTSTRAP_STACK} {status}, bootstrap version {version} (the templates need {TEMPLATE_MIN_VERSION}, "
        f"lookups {LOOKUP_MIN_VERSION})"
    )


def _bootstrap_version(ctx: Context, stack: dict) -> int | None:
    """The SSM parameter is what every template's CheckBootstrapVersion rule reads; the stack's output says the same
    for bootstraps whose parameter was removed by hand."""
    try:
        parameter = ctx.client("ssm").get_parameter(Name=f"/cdk-bootstrap/{ctx.qualifier}/version")["Parameter"]
        value = parameter["Value"]
    except ClientError as err:
        if err.response.get("Error", {}).get("Code") != "ParameterNotFound":
            raise
        value = next(
            (o.get("OutputValue") for o in stack.get("Outputs", []) if o["OutputKey"] == "BootstrapVersion"), None
        )
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def service_linked_roles(ctx: Context) -> Result:
    iam = ctx.client("iam")
    missing = []
    for role, service in SERVICE_LINKED_ROLES:
        try:
            iam.get_role(RoleName=role)
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") != "NoSuchEntity":
                raise
            missing.append((role, service))
    if missing:
        commands = " && ".join(f"aws iam create-service-linked-role --aws-service-name {svc}" for _, svc in missing)
        return fail(
            f"{' and '.join(role for role, _ in missing)} missing (the deploy would fail with 'Unable to "
            f"assume the service linked role'): run {commands}"
        )
    return ok(" and ".join(role for role, _ in SERVICE_LINKED_ROLES) + " exist")


def lambda_concurrency(ctx: Context) -> Result:
    """What the stage reserves leaves Lambda its minimum of unreserved concurrency."""
    limits = ctx.client("lambda").get_account_settings()["AccountLimit"]
    total, unreserved = limits["ConcurrentExecutions"], limits["UnreservedConcurrentExecutions"]
    if not ctx.settings.stage.lambda_reserved_concurrency:
        return ok(
            f"the stage reserves none (lambda_reserved_concurrency is false); account concurrency {total}, "
            f"unreserved {unreserved}"
        )
    planned = sum(RESERVATIONS.values())
    # A deployed stage's reservations are already out of the unreserved pool; a deploy sets them again, not twice.
    held = _reserved_by_service_stack(ctx)
    left = unreserved + held - planned
    what = ", ".join(f"{name} {count}" for name, count in RESERVATIONS.items())
    if left < UNRESERVED_FLOOR:
        return fail(
            f"reserving {planned} ({what}) would leave {left} of the account's {total} unreserved, Lambda "
            f"keeps at least {min(UNRESERVED_FLOOR, total)} (the deploy would fail with 'Specified "
            "ReservedConcurrentExecutions for function decreases account's UnreservedConcurrentExecution "
            "below its minimum value'): request a higher 'Concurrent executions' quota for Lambda in Service "
            "Quotas, or set lambda_reserved_concurrency to false"
        )
    return ok(f"reserving {planned} ({what}) leaves {left} of {total} unreserved (at least {UNRESERVED_FLOOR} needed)")


def _reserved_by_service_stack(ctx: Context) -> int:
    """Reserved concurrency the deployed service stack's functions hold now (0 when it is not deployed)."""
    if ctx.outputs("Service") is None:
        return 0
    cloudformation, lambda_ = ctx.client("cloudformation"), ctx.client("lambda")
    stack = stack_id(ctx.settings.stage.name, "Service")
    held = 0
    for page in cloudformation.get_paginator("list_stack_resources").paginate(StackName=stack):
        for resource in page["StackResourceSummaries"]:
            if resource["ResourceType"] == "AWS::Lambda::Function" and resource.get("PhysicalResourceId"):
                answer = lambda_.get_function_concurrency(FunctionName=resource["PhysicalResourceId"])
                held += answer.get("ReservedConcurrentExecutions", 0)
    return held
