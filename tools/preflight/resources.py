"""Checks of what the settings name: certificates, images, pinned models, the VPC, and Docker for asset builds."""

from __future__ import annotations

import subprocess
from typing import Any

from botocore.exceptions import ClientError

from modelsync.config import DEFAULT_PREFIX
from stacks.app_image import AppImage, parse_app_image
from stacks.naming import stack_id
from stacks.settings.sections import certificate_place
from tools.pins import MISSING_PIN_FIX, pin_states
from tools.preflight.context import DOCKER_TIMEOUT_SECONDS, Context, Result, fail, ok, skip

# What to do about an ACM certificate in each state but ISSUED (ACM API reference, CertificateDetail.Status).
CERTIFICATE_FIXES = {
    "PENDING_VALIDATION": "finish its validation (create the DNS records ACM lists for it)",
    "EXPIRED": "renew or replace it",
    "REVOKED": "request a new one",
    "INACTIVE": "request a new one",
    "FAILED": "request a new one (ACM says why in the certificate's details)",
    "VALIDATION_TIMED_OUT": "request a new one and validate it within 72 hours",
}


def certificates(ctx: Context) -> Result:
    apps = [app for app in ctx.settings.apps.values() if app.certificate_arn]
    if not apps:
        return skip("no app has a certificate_arn")
    acm = ctx.client("acm")
    found, problems = [], []
    for app in apps:
        region, _ = certificate_place(app.certificate_arn)
        if region != ctx.region:
            # ACM certificates are regional; the listener is created in the stage's region and cannot use it.
            problems.append(
                f"{app.name}: the certificate is in {region}, the load balancer in {ctx.region} "
                f"(CreateListener fails): request or import one in {ctx.region}"
            )
            continue
        try:
            certificate = acm.describe_certificate(CertificateArn=app.certificate_arn)["Certificate"]
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
                raise
            problems.append(
                f"{app.name}: {app.certificate_arn} does not exist in this account: correct "
                f"apps.{app.name}.certificate_arn"
            )
            continue
        status, domain = certificate["Status"], certificate.get("DomainName", "?")
        if status != "ISSUED":
            fix = CERTIFICATE_FIXES.get(status, "request a new one")
            problems.append(f"{app.name}: the certificate for {domain} is {status}: {fix}")
        else:
            until = certificate.get("NotAfter")
            found.append(f"{app.name}: {domain} ISSUED" + (f" until {until:%Y-%m-%d}" if until else ""))
    if problems:
        return fail("; ".join(problems))
    return ok("; ".join(found))


def image_tag(ctx: Context) -> Result:
    image = ctx.settings.image
    if image.image_source != "ecr":
        return skip("image_source is asset: the images are built from container/ at deploy")
    repository = _project_repository(ctx)
    if repository is None:
        return skip(_repository_not_deployed(ctx))
    registry, name = repository
    if not _image_exists(ctx, registry, name, {"imageTag": image.image_tag}):
        return fail(
            f"tag {image.image_tag} is not in repository {name}: build it with WITH_PADDLEOCR=1 and push it "
            f"(docker push {registry}.dkr.ecr.{ctx.region}.amazonaws.com/{name}:{image.image_tag}), "
            "or set image_tag to a tag that is there"
        )
    return ok(f"{name}:{image.image_tag} exists")


def app_images(ctx: Context) -> Result:
    """Every app image in ECR exists: a bare tag of the project's repository, or a full ECR reference."""
    images = [(app.name, parse_app_image(app.image, f"apps.{app.name}.image")) for app in ctx.settings.apps.values()]
    in_ecr = [(name, image) for name, image in images if image.kind in ("project", "ecr")]
    if not in_ecr:
        return skip("no app image is in ECR (the demo app, or images of other registries: not checked)")
    found, problems, unchecked = [], [], []
    for app, image in in_ecr:
        where = _where(ctx, image)
        if where is None:
            unchecked.append(app)
            continue
        client, registry, repository = where
        reference = f"{repository}{'@' if image.tag_or_digest.startswith('sha256:') else ':'}{image.tag_or_digest}"
        try:
            exists = _image_exists(ctx, registry, repository, _image_id(image), client)
        except ClientError as err:
            if "AccessDenied" not in err.response.get("Error", {}).get("Code", ""):
                raise
            problems.append(
                f"{app}: cannot look into {registry}/{repository} (access denied): check {reference} "
                "by hand, or --skip app-images"
            )
            continue
        if exists:
            found.append(f"{app}: {reference}")
        else:
            problems.append(f"{app}: {reference} is not in registry {registry}: push it, or correct apps.{app}.image")
    if problems:
        return fail("; ".join(problems))
    if not found:
        return skip(_repository_not_deployed(ctx))
    later = f"; {', '.join(unchecked)}: project repository not deployed yet" if unchecked else ""
    return ok("exist: " + ", ".join(found) + later)


def _where(ctx: Context, image: AppImage) -> tuple[Any, str, str] | None:
    """(ECR client, registry id, repository) of an image; None for a project tag before the repository exists."""
    if image.kind == "ecr":
        return ctx.client("ecr", None if image.region == ctx.region else image.region), image.account, image.repository
    repository = _project_repository(ctx)
    return None if repository is None else (ctx.client("ecr"), *repository)


def _image_id(image: AppImage) -> dict[str, str]:
    key = "imageDigest" if image.tag_or_digest.startswith("sha256:") else "imageTag"
    return {key: image.tag_or_digest}


def _project_repository(ctx: Context) -> tuple[str, str] | None:
    """(registry id, name) of the project's repository from the storage stack's RepositoryUri, None before it exists."""
    outputs = ctx.outputs("Storage")
    uri = (outputs or {}).get("RepositoryUri")
    if not uri:
        return None
    host, _, name = uri.partition("/")
    return host.split(".", 1)[0], name


def _repository_not_deployed(ctx: Context) -> str:
    storage = stack_id(ctx.settings.stage.name, "Storage")
    return f"repository not deployed yet: deploy {storage} (make deploy STACKS={storage}), push, then check again"


def _image_exists(ctx: Context, registry: str, repository: str, image_id: dict[str, str], client: Any = None) -> bool:
    ecr = client or ctx.client("ecr")
    try:
        ecr.describe_images(registryId=registry, repositoryName=repository, imageIds=[image_id])
    except ClientError as err:
        code = err.response.get("Error", {}).get("Code")
        if code in ("ImageNotFoundException", "RepositoryNotFoundException"):
            return False
        raise
    return True


def pins(ctx: Context) -> Result:
    """Every pinned NAME@VERSION is in the stage's bucket (the same check as make check-pins)."""
    apps = list(ctx.settings.apps.values())
    pinned = sum(len(app.pinned_models) for app in apps)
    if not pinned:
        return skip("no app pins a model version")
    bucket = (ctx.outputs("Service") or {}).get("ModelsBucketName")
    if not bucket:
        return skip(f"the service stack is not deployed yet: the {pinned} pins are checked once its bucket exists")
    missing = [state for state in pin_states(apps, ctx.s3(), bucket) if state.present is False]
    if missing:
        listed = ", ".join(f"{state.app}: {state.spec}" for state in missing)
        return fail(f"not in s3://{bucket}/{DEFAULT_PREFIX}: {listed}: {MISSING_PIN_FIX}")
    return ok(f"{pinned} pinned versions present in s3://{bucket}/{DEFAULT_PREFIX}")


def vpc(ctx: Context) -> Result:
    """vpc_id's VPC: private subnets routed to a NAT gateway in two AZs or more, each route table with the S3 gateway
    endpoint (the same rule as the network stack's synth check, looked at from the account's side)."""
    vpc_id = ctx.settings.network.vpc_id
    if not vpc_id:
        return skip("no vpc_id: the network stack creates the VPC")
    ec2 = ctx.client("ec2")
    by_vpc = [{"Name": "vpc-id", "Values": [vpc_id]}]
    try:
        ec2.describe_vpcs(VpcIds=[vpc_id])
    except ClientError as err:
        if err.response.get("Error", {}).get("Code") != "InvalidVpcID.NotFound":
            raise
        return fail(f"{vpc_id} does not exist in {ctx.region} of this account: correct vpc_id, or leave it empty")
    subnets = _all(ec2, "describe_subnets", "Subnets", Filters=by_vpc)
    tables = _all(ec2, "describe_route_tables", "RouteTables", Filters=by_vpc)
    main = next((t for t in tables if any(a.get("Main") for a in t.get("Associations", []))), None)
    table_of = {a["SubnetId"]: t for t in tables for a in t.get("Associations", []) if a.get("SubnetId")}
    private = {}  # subnet id -> (AZ, route table id) of subnets whose default route goes to a NAT gateway
    for subnet in subnets:
        table = table_of.get(subnet["SubnetId"], main)  # a subnet without its own table uses the main one
        if table is not None and _routes_to_nat(table):
            private[subnet["SubnetId"]] = (subnet["AvailabilityZone"], table["RouteTableId"])
    zones = sorted({zone for zone, _ in private.values()})
    if len(zones) < 2:
        return fail(
            f"{vpc_id} has private subnets routed to a NAT gateway in {len(zones)} AZ(s) "
            f"({', '.join(zones) or 'none'}), the tasks and mount targets need 2: add them, or leave vpc_id "
            "empty for a new VPC"
        )
    endpoints = ec2.describe_vpc_endpoints(
        Filters=[
            *by_vpc,
            {"Name": "service-name", "Values": [f"com.amazonaws.{ctx.region}.s3"]},
            {"Name": "vpc-endpoint-type", "Values": ["Gateway"]},
        ]
    )["VpcEndpoints"]
    served = {
        table
        for endpoint in endpoints
        if endpoint.get("State", "").lower() == "available"
        for table in endpoint.get("RouteTableIds", [])
    }
    lacking = sorted({table for _, table in private.values()} - served)
    if lacking:
        hint = (
            f"aws ec2 modify-vpc-endpoint --vpc-endpoint-id {endpoints[0]['VpcEndpointId']} --add-route-table-ids "
            if endpoints
            else f"aws ec2 create-vpc-endpoint --vpc-id {vpc_id} --service-name "
            f"com.amazonaws.{ctx.region}.s3 --route-table-ids "
        )
        return fail(
            f"route tables {', '.join(lacking)} of the private subnets have no S3 gateway endpoint (model "
            f"downloads would go through NAT): {hint}{' '.join(lacking)}"
        )
    return ok(
        f"{vpc_id}: {len(private)} private subnets with NAT egress in {', '.join(zones)}, S3 gateway endpoint "
        "on their route tables"
    )


def _routes_to_nat(table: dict) -> bool:
    return any(
        route.get("DestinationCidrBlock") == "0.0.0.0/0"
        and route.get("NatGatewayId")
        and route.get("State") != "blackhole"
        for route in table.get("Routes", [])
    )


def _all(client: Any, operation: str, key: str, **params: Any) -> list[dict]:
    items: list[dict] = []
    for page in client.get_paginator(operation).paginate(**params):
        items.extend(page[key])
    return items


def docker(ctx: Context) -> Result:
    if ctx.settings.image.image_source != "asset":
        return skip("image_source is ecr: nothing is built at deploy")
    why = "cdk deploy builds the images from container/"
    try:
        code = ctx.run(["docker", "info"])
    except FileNotFoundError:
        return fail(f"docker is not installed and {why}: install Docker, or push an image and set image_source=ecr")
    except subprocess.TimeoutExpired:
        return fail(f"docker info did not answer within {DOCKER_TIMEOUT_SECONDS} s and {why}: restart Docker")
    if code != 0:
        return fail(
            f"docker info exited {code}: the Docker engine is not running or not reachable, and {why}: start "
            "it (or check DOCKER_HOST and your permission on its socket)"
        )
    return ok(f"docker info answered: {why}")
