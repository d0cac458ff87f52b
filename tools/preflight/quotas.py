"""Checks of the service quotas the settings would exceed: Fargate vCPU, EFS file systems, load balancers."""

from __future__ import annotations

from dataclasses import dataclass

from botocore.exceptions import ClientError

from stacks.naming import app_output
from tools.preflight.context import Context, Result, fail, ok, skip

FARGATE_CPU_UNITS_PER_VCPU = 1024


@dataclass(frozen=True)
class Quota:
    service_code: str
    code: str
    name: str  # as the Service Quotas console lists it

    def where(self, region: str) -> str:
        return f"Service Quotas, {self.service_code} '{self.name}' ({self.code}) in {region}"


# Names and defaults are in the AWS docs (ECS guide service-quotas; EFS and ELB quota pages). The codes are the ones
# Service Quotas uses in public tooling and quota listings; no AWS docs page found here states them, so a renamed
# code shows as NoSuchResourceException from both calls, a FAIL line, not a wrong answer. Fargate's quotas live
# under the service code `fargate`, not `ecs`.
FARGATE_ON_DEMAND_VCPU = Quota("fargate", "L-3032A538", "Fargate On-Demand vCPU resource count")
EFS_FILE_SYSTEMS = Quota("elasticfilesystem", "L-848C634D", "File systems per account")
APPLICATION_LOAD_BALANCERS = Quota("elasticloadbalancing", "L-53DA6B97", "Application Load Balancers per Region")


def quota_value(ctx: Context, quota: Quota) -> float:
    """The applied value; the AWS default when the account has none applied (Service Quotas then answers
    NoSuchResourceException for GetServiceQuota)."""
    client = ctx.client("service-quotas")
    try:
        answer = client.get_service_quota(ServiceCode=quota.service_code, QuotaCode=quota.code)
    except ClientError as err:
        if err.response.get("Error", {}).get("Code") != "NoSuchResourceException":
            raise
        answer = client.get_aws_default_service_quota(ServiceCode=quota.service_code, QuotaCode=quota.code)
    return float(answer["Quota"]["Value"])


def fargate_vcpu(ctx: Context) -> Result:
    """Every app at max_capacity plus the seeding task fit into the account's Fargate On-Demand vCPU."""
    settings = ctx.settings
    parts = [(app.name, app.max_capacity, app.cpu) for app in settings.apps.values()]
    parts.append(("seeding", 1, settings.seeding.seed_cpu))
    need = sum(count * cpu for _, count, cpu in parts) / FARGATE_CPU_UNITS_PER_VCPU
    how = " + ".join(f"{name} {count}x{cpu / FARGATE_CPU_UNITS_PER_VCPU:g}" for name, count, cpu in parts)
    quota = quota_value(ctx, FARGATE_ON_DEMAND_VCPU)
    if need > quota:
        return fail(
            f"at max capacity the stage runs {need:g} vCPU ({how}), the account may run {quota:g}: request "
            f"more ({FARGATE_ON_DEMAND_VCPU.where(ctx.region)}), or lower max_capacity or cpu of the apps"
        )
    # A rolling deploy starts new tasks before it stops old ones (maximumPercent 200): headroom beyond this helps.
    return ok(f"{need:g} of {quota:g} vCPU at max capacity ({how}); the account's other Fargate tasks count too")


def efs_file_systems(ctx: Context) -> Result:
    if ctx.outputs("Storage") is not None:
        return skip("the storage stack exists: its file system is already counted")
    count = sum(
        len(page["FileSystems"]) for page in ctx.client("efs").get_paginator("describe_file_systems").paginate()
    )
    quota = quota_value(ctx, EFS_FILE_SYSTEMS)
    if count + 1 > quota:
        return fail(
            f"{count} of {quota:g} EFS file systems exist and the storage stack creates one more: delete unused "
            f"ones, or request more ({EFS_FILE_SYSTEMS.where(ctx.region)})"
        )
    return ok(f"{count} of {quota:g} EFS file systems in use, the storage stack adds 1")


def load_balancers(ctx: Context) -> Result:
    """One Application Load Balancer per app with an ingress; those the deployed stack has are already counted."""
    apps = [app.name for app in ctx.settings.apps.values() if app.ingress != "none"]
    if not apps:
        return skip("no app has an ingress: no load balancer")
    deployed = ctx.outputs("Service") or {}
    new = [name for name in apps if app_output(name, "Url") not in deployed]
    existing = sum(
        1
        for page in ctx.client("elbv2").get_paginator("describe_load_balancers").paginate()
        for balancer in page["LoadBalancers"]
        if balancer.get("Type") == "application"
    )
    quota = quota_value(ctx, APPLICATION_LOAD_BALANCERS)
    adds = f"this deploy adds {len(new)}" + (f" ({', '.join(new)})" if new else "")
    if existing + len(new) > quota:
        return fail(
            f"{existing} of {quota:g} Application Load Balancers exist in {ctx.region} and {adds}: delete "
            f"unused ones, or request more ({APPLICATION_LOAD_BALANCERS.where(ctx.region)})"
        )
    return ok(f"{existing} of {quota:g} Application Load Balancers in {ctx.region}, {adds}")
