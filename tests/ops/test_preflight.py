"""tools/preflight: each check against botocore's Stubber on real API shapes (the pins check: the moto S3 server).

Every check has a test where it passes and one where it fails (and where it applies, one where it is skipped);
then whole runs of the command: its lines, its exit code, its usage errors, and the Makefile's use of it.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber

from seed_fakes import ACCOUNT, REGION, REPO, make_client
from test_pins import publish
from tools.preflight import CHECKS, run_check
from tools.preflight.account import LOOKUP_MIN_VERSION, TEMPLATE_MIN_VERSION
from tools.preflight.cli import main, make_context
from tools.preflight.context import FAIL, OK, SKIP

NOW = datetime(2026, 11, 24, 9, 0, tzinfo=timezone.utc)
STAGE = {"account": ACCOUNT, "region": REGION}
CERT = f"arn:aws:acm:{REGION}:{ACCOUNT}:certificate/0a1b2c3d-4e5f-6789-abcd-ef0123456789"
REPOSITORY = "modeldelivery-dev-repository"
REPOSITORY_URI = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{REPOSITORY}"
OTHER_ACCOUNT = "222222222222"
DIGEST = "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
VPC = "vpc-0123456789abcdef0"


class Aws:
    """Stubbed clients by (service, region), made on first use like the tool's own factory."""

    def __init__(self) -> None:
        self.clients: dict = {}
        self.stubs: dict = {}

    def __call__(self, service: str, region: str | None = None):
        key = (service, region or REGION)
        if key not in self.clients:
            self.clients[key] = make_client(service, region or REGION)
            self.stubs[key] = Stubber(self.clients[key])
            self.stubs[key].activate()
        return self.clients[key]

    def stub(self, service: str, region: str | None = None) -> Stubber:
        self(service, region)
        return self.stubs[(service, region or REGION)]


@pytest.fixture
def aws():
    fake = Aws()
    yield fake
    for stub in fake.stubs.values():
        stub.assert_no_pending_responses()  # every expected call was made


def no_s3():
    raise AssertionError("this check must not read the bucket")


def no_commands(command):
    raise AssertionError(f"this check must not run {command}")


def write_cdk_json(tmp_path: Path, stage: dict) -> Path:
    document = json.loads((REPO / "cdk.json").read_text())
    document["context"]["model-delivery"]["stages"]["dev"] = stage
    path = tmp_path / "cdk.json"
    path.write_text(json.dumps(document))
    return path


def context(tmp_path, aws, stage=STAGE, *, region=None, s3=no_s3, run=no_commands):
    return make_context(write_cdk_json(tmp_path, stage), "dev", region, aws, s3=s3, run=run)


def check(name: str, ctx):
    """One check's result through the same wrapper as a whole run (AWS errors become FAIL lines)."""
    return run_check(next(c for c in CHECKS if c.name == name), ctx)


def with_apps(**apps) -> dict:
    return {**STAGE, "apps": apps}


# ---- real response shapes -------------------------------------------------------------------------------------

def expect_identity(aws, account=ACCOUNT):
    aws.stub("sts").add_response("get_caller_identity", {
        "UserId": "AROA3EXAMPLEEXAMPLE:dev", "Account": account,
        "Arn": f"arn:aws:sts::{account}:assumed-role/Deployer/dev"}, {})


def expect_stack(aws, name: str, outputs: dict | None = None, status: str = "UPDATE_COMPLETE"):
    aws.stub("cloudformation").add_response("describe_stacks", {"Stacks": [{
        "StackName": name, "StackId": f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/{name}/0f1e2d3c",
        "CreationTime": NOW, "StackStatus": status,
        "Outputs": [{"OutputKey": k, "OutputValue": v} for k, v in (outputs or {}).items()]}]}, {"StackName": name})


def expect_no_stack(aws, name: str):
    aws.stub("cloudformation").add_client_error(
        "describe_stacks", service_error_code="ValidationError", service_message=f"Stack with id {name} does not exist",
        http_status_code=400, expected_params={"StackName": name})


def expect_bootstrap_parameter(aws, value: str | None):
    name = "/cdk-bootstrap/hnb659fds/version"
    if value is None:
        aws.stub("ssm").add_client_error("get_parameter", service_error_code="ParameterNotFound",
                                         http_status_code=400, expected_params={"Name": name})
        return
    aws.stub("ssm").add_response("get_parameter", {"Parameter": {
        "Name": name, "Type": "String", "Value": value, "Version": 3, "LastModifiedDate": NOW,
        "ARN": f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter{name}", "DataType": "text"}}, {"Name": name})


def expect_role(aws, name: str, exists: bool = True):
    if not exists:
        aws.stub("iam").add_client_error(
            "get_role", service_error_code="NoSuchEntity", http_status_code=404,
            service_message=f"The role with name {name} cannot be found.", expected_params={"RoleName": name})
        return
    aws.stub("iam").add_response("get_role", {"Role": {
        "Path": "/aws-service-role/", "RoleName": name, "RoleId": "AROA3EXAMPLEROLEID01",
        "Arn": f"arn:aws:iam::{ACCOUNT}:role/aws-service-role/{name}", "CreateDate": NOW}}, {"RoleName": name})


def expect_lambda_limits(aws, total: int, unreserved: int):
    aws.stub("lambda").add_response("get_account_settings", {
        "AccountLimit": {"TotalCodeSize": 80530636800, "CodeSizeUnzipped": 262144000, "CodeSizeZipped": 52428800,
                         "ConcurrentExecutions": total, "UnreservedConcurrentExecutions": unreserved},
        "AccountUsage": {"TotalCodeSize": 0, "FunctionCount": 0}}, {})


def expect_certificate(aws, status: str = "ISSUED", region: str | None = None):
    aws.stub("acm", region).add_response("describe_certificate", {"Certificate": {
        "CertificateArn": CERT, "DomainName": "models.example.com", "Status": status, "Type": "AMAZON_ISSUED",
        "NotAfter": datetime(2027, 12, 24, tzinfo=timezone.utc)}}, {"CertificateArn": CERT})


def expect_image(aws, registry: str, repository: str, image_id: dict, *, exists=True, region=None):
    params = {"registryId": registry, "repositoryName": repository, "imageIds": [image_id]}
    if not exists:
        aws.stub("ecr", region).add_client_error(
            "describe_images", service_error_code="ImageNotFoundException", http_status_code=400,
            service_message=f"The image with imageId {image_id} does not exist within the repository with name "
                            f"'{repository}' in the registry with id '{registry}'", expected_params=params)
        return
    aws.stub("ecr", region).add_response("describe_images", {"imageDetails": [{
        "registryId": registry, "repositoryName": repository, "imageDigest": DIGEST,
        "imageTags": [image_id.get("imageTag", "v1")], "imageSizeInBytes": 912345678, "imagePushedAt": NOW}]}, params)


def expect_quota(aws, service_code: str, code: str, value: float, *, applied=True):
    quota = {"ServiceCode": service_code, "QuotaCode": code, "QuotaName": "q", "Value": value, "Unit": "None",
             "Adjustable": True, "GlobalQuota": False}
    params = {"ServiceCode": service_code, "QuotaCode": code}
    if not applied:
        aws.stub("service-quotas").add_client_error(
            "get_service_quota", service_error_code="NoSuchResourceException", http_status_code=400,
            expected_params=params)
        aws.stub("service-quotas").add_response("get_aws_default_service_quota", {"Quota": quota}, params)
        return
    aws.stub("service-quotas").add_response("get_service_quota", {"Quota": quota}, params)


def file_system(n: int) -> dict:
    return {"OwnerId": ACCOUNT, "CreationToken": f"token-{n}", "FileSystemId": f"fs-0{n:016x}", "CreationTime": NOW,
            "LifeCycleState": "available", "NumberOfMountTargets": 2, "SizeInBytes": {"Value": 6144},
            "PerformanceMode": "generalPurpose", "Tags": []}


def load_balancer(n: int, kind: str = "application") -> dict:
    return {"LoadBalancerArn": f"arn:aws:elasticloadbalancing:{REGION}:{ACCOUNT}:loadbalancer/app/lb{n}/50dc6c495c0c9188",
            "LoadBalancerName": f"lb{n}", "Type": kind, "Scheme": "internal", "CreatedTime": NOW,
            "DNSName": f"internal-lb{n}-1234567890.{REGION}.elb.amazonaws.com"}


def expect_load_balancers(aws, balancers: list[dict]):
    aws.stub("elbv2").add_response("describe_load_balancers", {"LoadBalancers": balancers}, {})


# ---- credentials -------------------------------------------------------------------------------------------

def test_credentials_of_the_stages_account_pass(tmp_path, aws):
    expect_identity(aws)
    result = check("credentials", context(tmp_path, aws))
    assert result.status == OK
    assert result.message == f"arn:aws:sts::{ACCOUNT}:assumed-role/Deployer/dev, account {ACCOUNT}, region {REGION}"


def test_credentials_of_another_account_fail(tmp_path, aws):
    expect_identity(aws, account=OTHER_ACCOUNT)
    result = check("credentials", context(tmp_path, aws))
    assert result.status == FAIL
    assert result.message.startswith(f"the credentials are for account {OTHER_ACCOUNT}, stage dev deploys to {ACCOUNT}: "
                                     "use credentials of the stage's account (AWS_PROFILE)")


def test_another_region_than_the_stages_fails(tmp_path, aws):
    expect_identity(aws)
    result = check("credentials", context(tmp_path, aws, region="us-east-1"))
    assert result.status == FAIL
    assert result.message.startswith(f"preflight looks at region us-east-1, stage dev deploys to {REGION}")


def test_a_stage_without_account_deploys_to_the_credentials_one(tmp_path, aws):
    expect_identity(aws, account=OTHER_ACCOUNT)
    result = check("credentials", context(tmp_path, aws, {"region": REGION}))
    assert result.status == OK and result.message.endswith("(stage dev sets no account: it deploys to this one)")


def test_expired_credentials_fail(tmp_path, aws):
    aws.stub("sts").add_client_error("get_caller_identity", service_error_code="ExpiredToken", http_status_code=403,
                                     service_message="The security token included in the request is expired")
    result = check("credentials", context(tmp_path, aws))
    assert (result.status, result.message) == (
        FAIL, "AWS rejected the credentials (ExpiredToken): refresh them (aws sso login, or new keys) and retry")


def test_no_credentials_fail(tmp_path):
    session = boto3.Session(region_name=REGION)  # the test environment has none (conftest offline_aws)
    result = check("credentials", context(tmp_path, lambda service, region=None: session.client(service)))
    assert result.status == FAIL and result.message.startswith("no AWS credentials found: set AWS_PROFILE")


# ---- bootstrap ---------------------------------------------------------------------------------------------

def test_a_current_bootstrap_passes(tmp_path, aws):
    expect_identity(aws)
    expect_stack(aws, "CDKToolkit", {"BootstrapVersion": "30"})
    expect_bootstrap_parameter(aws, "30")
    result = check("bootstrap", context(tmp_path, aws))
    assert (result.status, result.message) == (
        OK, "CDKToolkit UPDATE_COMPLETE, bootstrap version 30 (the templates need 6, lookups 8)")


def test_no_bootstrap_fails_with_the_command(tmp_path, aws):
    expect_identity(aws)
    expect_no_stack(aws, "CDKToolkit")
    result = check("bootstrap", context(tmp_path, aws))
    assert result.status == FAIL
    assert result.message == (f"no CDKToolkit stack in {REGION}: this account and region were never bootstrapped; "
                              f"run npx cdk bootstrap aws://{ACCOUNT}/{REGION}")


def test_a_bootstrap_older_than_the_templates_accept_fails(tmp_path, aws):
    expect_identity(aws)
    expect_stack(aws, "CDKToolkit", {"BootstrapVersion": "5"})
    expect_bootstrap_parameter(aws, "5")
    result = check("bootstrap", context(tmp_path, aws))
    assert result.status == FAIL
    assert result.message.startswith("bootstrap version 5, the templates need 6 or later (CloudFormation refuses "
                                     "them: 'CDK bootstrap stack version 6 required')")


def test_a_failed_bootstrap_stack_fails(tmp_path, aws):
    expect_identity(aws)
    expect_stack(aws, "CDKToolkit", status="ROLLBACK_COMPLETE")
    result = check("bootstrap", context(tmp_path, aws))
    assert result.status == FAIL and result.message.startswith("CDKToolkit is ROLLBACK_COMPLETE")


def test_without_the_parameter_the_stacks_output_gives_the_version(tmp_path, aws):
    expect_identity(aws)
    expect_stack(aws, "CDKToolkit", {"BootstrapVersion": "7"})
    expect_bootstrap_parameter(aws, None)
    result = check("bootstrap", context(tmp_path, aws))
    assert result.status == OK
    assert result.message.startswith("bootstrap version 7 (templates need 6); below 8 the CLI's context lookups fall back")


def test_the_minimum_versions_are_those_aws_cdk_lib_synthesizes(tmp_path):
    """The installed aws-cdk-lib decides: the template rule refuses versions below TEMPLATE_MIN_VERSION, the lookup
    role (context lookups) asks for LOOKUP_MIN_VERSION."""
    import aws_cdk as cdk

    app = cdk.App(outdir=str(tmp_path / "out"))
    stack = cdk.Stack(app, "Probe", env=cdk.Environment(account=ACCOUNT, region=REGION))
    cdk.CfnWaitConditionHandle(stack, "Nothing")
    app.synth()
    template = json.loads((tmp_path / "out" / "Probe.template.json").read_text())
    refused = template["Rules"]["CheckBootstrapVersion"]["Assertions"][0]["Assert"]["Fn::Not"][0]["Fn::Contains"][0]
    assert max(int(version) for version in refused) + 1 == TEMPLATE_MIN_VERSION
    properties = json.loads((tmp_path / "out" / "manifest.json").read_text())["artifacts"]["Probe"]["properties"]
    assert properties["requiresBootstrapStackVersion"] == TEMPLATE_MIN_VERSION
    assert properties["lookupRole"]["requiresBootstrapStackVersion"] == LOOKUP_MIN_VERSION


# ---- service-linked roles ----------------------------------------------------------------------------------

def test_both_service_linked_roles_present_pass(tmp_path, aws):
    expect_role(aws, "AWSServiceRoleForECS")
    expect_role(aws, "AWSServiceRoleForApplicationAutoScaling_ECSService")
    result = check("service-linked-roles", context(tmp_path, aws))
    assert result.status == OK


def test_a_missing_service_linked_role_fails_with_the_create_command(tmp_path, aws):
    expect_role(aws, "AWSServiceRoleForECS", exists=False)
    expect_role(aws, "AWSServiceRoleForApplicationAutoScaling_ECSService", exists=False)
    result = check("service-linked-roles", context(tmp_path, aws))
    assert result.status == FAIL
    assert result.message == (
        "AWSServiceRoleForECS and AWSServiceRoleForApplicationAutoScaling_ECSService missing (the deploy would fail "
        "with 'Unable to assume the service linked role'): run aws iam create-service-linked-role --aws-service-name "
        "ecs.amazonaws.com && aws iam create-service-linked-role --aws-service-name "
        "ecs.application-autoscaling.amazonaws.com")


# ---- Lambda concurrency ------------------------------------------------------------------------------------

def reserving(tmp_path, aws):
    """A context whose stage sets lambda_reserved_concurrency: true in cdk.json."""
    return context(tmp_path, aws, {**STAGE, "lambda_reserved_concurrency": True})


def test_a_stage_that_reserves_nothing_passes_on_a_new_account(tmp_path, aws):
    expect_lambda_limits(aws, total=10, unreserved=10)
    result = check("lambda-concurrency", context(tmp_path, aws))
    assert result.status == OK
    assert result.message == ("the stage reserves none (lambda_reserved_concurrency is false); account concurrency 10, "
                              "unreserved 10")


def test_a_reservation_on_a_new_accounts_quota_fails(tmp_path, aws):
    expect_lambda_limits(aws, total=10, unreserved=10)
    expect_no_stack(aws, "ModelDelivery-dev-Service")
    result = check("lambda-concurrency", reserving(tmp_path, aws))
    assert result.status == FAIL
    assert result.message.startswith("reserving 6 (seed runner 1, task notifier 5) would leave 4 of the account's 10 "
                                     "unreserved, Lambda keeps at least 10 (the deploy would fail with 'Specified "
                                     "ReservedConcurrentExecutions")
    assert result.message.endswith("request a higher 'Concurrent executions' quota for Lambda in Service Quotas, or "
                                   "set lambda_reserved_concurrency to false")


def test_a_deployed_stages_own_reservations_are_not_counted_twice(tmp_path, aws):
    # 100 of 1000 are unreserved while this stage holds 6: a redeploy keeps 100 (counting the 6 twice would
    # make it 94 and fail).
    expect_lambda_limits(aws, total=1000, unreserved=100)
    expect_stack(aws, "ModelDelivery-dev-Service", {"ClusterName": "c"})
    functions = {"SeedRunnerFunction1A2B3C4D": ("ModelDelivery-dev-Service-SeedRunner-AbC", 1),
                 "TaskNotifierFunction5E6F7A8B": ("ModelDelivery-dev-Service-TaskNotifier-DeF", 5)}
    aws.stub("cloudformation").add_response("list_stack_resources", {"StackResourceSummaries": [
        {"LogicalResourceId": logical, "PhysicalResourceId": physical, "ResourceType": "AWS::Lambda::Function",
         "LastUpdatedTimestamp": NOW, "ResourceStatus": "UPDATE_COMPLETE"}
        for logical, (physical, _) in functions.items()] + [
        {"LogicalResourceId": "Cluster", "PhysicalResourceId": "c", "ResourceType": "AWS::ECS::Cluster",
         "LastUpdatedTimestamp": NOW, "ResourceStatus": "CREATE_COMPLETE"}]},
        {"StackName": "ModelDelivery-dev-Service"})
    for physical, reserved in functions.values():
        aws.stub("lambda").add_response("get_function_concurrency", {"ReservedConcurrentExecutions": reserved},
                                        {"FunctionName": physical})
    result = check("lambda-concurrency", reserving(tmp_path, aws))
    assert (result.status, result.message) == (
        OK, "reserving 6 (seed runner 1, task notifier 5) leaves 100 of 1000 unreserved (at least 100 needed)")


# ---- certificates ------------------------------------------------------------------------------------------

PUBLIC_WEB = with_apps(web={"ingress": "public", "certificate_arn": CERT})


def test_an_issued_certificate_in_the_stages_region_passes(tmp_path, aws):
    expect_certificate(aws)
    result = check("certificates", context(tmp_path, aws, PUBLIC_WEB))
    assert (result.status, result.message) == (OK, "web: models.example.com ISSUED until 2027-12-24")


def test_a_certificate_pending_validation_fails(tmp_path, aws):
    expect_certificate(aws, status="PENDING_VALIDATION")
    result = check("certificates", context(tmp_path, aws, PUBLIC_WEB))
    assert (result.status, result.message) == (
        FAIL, "web: the certificate for models.example.com is PENDING_VALIDATION: finish its validation (create the "
              "DNS records ACM lists for it)")


def test_a_certificate_that_does_not_exist_fails(tmp_path, aws):
    aws.stub("acm").add_client_error("describe_certificate", service_error_code="ResourceNotFoundException",
                                     http_status_code=400, expected_params={"CertificateArn": CERT},
                                     service_message=f"Could not find certificate {CERT}.")
    result = check("certificates", context(tmp_path, aws, PUBLIC_WEB))
    assert result.status == FAIL
    assert result.message == f"web: {CERT} does not exist in this account: correct apps.web.certificate_arn"


def test_a_certificate_of_another_region_fails_before_asking_acm(tmp_path, aws):
    result = check("certificates", context(tmp_path, aws, PUBLIC_WEB, region="us-east-1"))
    assert (result.status, result.message) == (
        FAIL, f"web: the certificate is in {REGION}, the load balancer in us-east-1 (CreateListener fails): request "
              "or import one in us-east-1")


def test_no_certificate_is_skipped(tmp_path, aws):
    assert check("certificates", context(tmp_path, aws)).status == SKIP


# ---- image_tag ---------------------------------------------------------------------------------------------

ECR_STAGE = {**STAGE, "image_source": "ecr", "image_tag": "v1.4.0"}


def test_an_image_tag_in_the_project_repository_passes(tmp_path, aws):
    expect_stack(aws, "ModelDelivery-dev-Storage", {"RepositoryUri": REPOSITORY_URI})
    expect_image(aws, ACCOUNT, REPOSITORY, {"imageTag": "v1.4.0"})
    result = check("image-tag", context(tmp_path, aws, ECR_STAGE))
    assert (result.status, result.message) == (OK, f"{REPOSITORY}:v1.4.0 exists")


def test_an_image_tag_not_pushed_fails_with_the_push(tmp_path, aws):
    expect_stack(aws, "ModelDelivery-dev-Storage", {"RepositoryUri": REPOSITORY_URI})
    expect_image(aws, ACCOUNT, REPOSITORY, {"imageTag": "v1.4.0"}, exists=False)
    result = check("image-tag", context(tmp_path, aws, ECR_STAGE))
    assert result.status == FAIL
    assert result.message == (f"tag v1.4.0 is not in repository {REPOSITORY}: build it with WITH_PADDLEOCR=1 and push "
                              f"it (docker push {REPOSITORY_URI}:v1.4.0), or set image_tag to a tag that is there")


def test_an_image_tag_before_the_repository_exists_is_skipped(tmp_path, aws):
    expect_no_stack(aws, "ModelDelivery-dev-Storage")
    result = check("image-tag", context(tmp_path, aws, ECR_STAGE))
    assert result.status == SKIP and result.message.startswith("repository not deployed yet")


def test_image_tag_with_asset_images_is_skipped(tmp_path, aws):
    assert check("image-tag", context(tmp_path, aws)).status == SKIP


# ---- app images --------------------------------------------------------------------------------------------

OCR_IMAGE = f"{OTHER_ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/paddleocr-api@{DIGEST}"


def test_app_images_in_ecr_of_another_region_and_the_project_repository_pass(tmp_path, aws):
    stage = with_apps(ocr={"image": OCR_IMAGE}, web={"image": "maskterial-9a5998c"})
    expect_image(aws, OTHER_ACCOUNT, "paddleocr-api", {"imageDigest": DIGEST}, region="us-east-1")
    expect_stack(aws, "ModelDelivery-dev-Storage", {"RepositoryUri": REPOSITORY_URI})
    expect_image(aws, ACCOUNT, REPOSITORY, {"imageTag": "maskterial-9a5998c"})
    result = check("app-images", context(tmp_path, aws, stage))
    assert (result.status, result.message) == (
        OK, f"exist: ocr: paddleocr-api@{DIGEST}, web: {REPOSITORY}:maskterial-9a5998c")


def test_an_app_image_missing_from_ecr_fails(tmp_path, aws):
    stage = with_apps(ocr={"image": OCR_IMAGE})
    expect_image(aws, OTHER_ACCOUNT, "paddleocr-api", {"imageDigest": DIGEST}, exists=False, region="us-east-1")
    result = check("app-images", context(tmp_path, aws, stage))
    assert (result.status, result.message) == (
        FAIL, f"ocr: paddleocr-api@{DIGEST} is not in registry {OTHER_ACCOUNT}: push it, or correct apps.ocr.image")


def test_app_images_outside_ecr_are_skipped(tmp_path, aws):
    stage = with_apps(web={"image": "ghcr.io/example/app:1.0"})
    assert check("app-images", context(tmp_path, aws, stage)).status == SKIP


# ---- pins --------------------------------------------------------------------------------------------------

def test_pins_present_in_the_bucket_pass(tmp_path, aws, s3, bucket):
    version = publish(s3, bucket, tmp_path, "paddleocr", b"weights")
    expect_stack(aws, "ModelDelivery-dev-Service", {"ModelsBucketName": bucket})
    ctx = context(tmp_path, aws, with_apps(demo={"models": [f"paddleocr@{version}"]}), s3=lambda: s3)
    result = check("pins", ctx)
    assert (result.status, result.message) == (OK, f"1 pinned versions present in s3://{bucket}/models/")


def test_a_pin_missing_from_the_bucket_fails(tmp_path, aws, s3, bucket):
    version = publish(s3, bucket, tmp_path, "paddleocr", b"weights")
    expect_stack(aws, "ModelDelivery-dev-Service", {"ModelsBucketName": bucket})
    models = [f"paddleocr@{version}", "PP_L2_material_agnostic@0123456789abcdef"]
    result = check("pins", context(tmp_path, aws, with_apps(demo={"models": models}), s3=lambda: s3))
    assert (result.status, result.message) == (
        FAIL, f"not in s3://{bucket}/models/: demo: PP_L2_material_agnostic@0123456789abcdef: tasks would fail to "
              "start; publish or seed it, or pin a version `modelsync list` shows")


def test_pins_before_the_bucket_exists_are_skipped(tmp_path, aws):
    expect_no_stack(aws, "ModelDelivery-dev-Service")
    ctx = context(tmp_path, aws, with_apps(demo={"models": ["paddleocr@0123456789abcdef"]}))
    result = check("pins", ctx)
    assert result.status == SKIP and result.message.startswith("the service stack is not deployed yet")


# ---- VPC ---------------------------------------------------------------------------------------------------

def subnet(n: int, zone: str) -> dict:
    return {"SubnetId": f"subnet-0{n}", "VpcId": VPC, "AvailabilityZone": f"{REGION}{zone}",
            "CidrBlock": f"10.0.{n}.0/24", "State": "available"}


def route_table(name: str, subnets: list[int], target: dict, main: bool = False) -> dict:
    associations = [{"RouteTableAssociationId": f"rtbassoc-{name}{n}", "RouteTableId": f"rtb-{name}",
                     "SubnetId": f"subnet-0{n}", "Main": False} for n in subnets]
    if main:
        associations.append({"RouteTableAssociationId": f"rtbassoc-{name}main", "RouteTableId": f"rtb-{name}",
                             "Main": True})
    return {"RouteTableId": f"rtb-{name}", "VpcId": VPC, "Associations": associations, "Routes": [
        {"DestinationCidrBlock": "10.0.0.0/16", "GatewayId": "local", "State": "active"},
        {"DestinationCidrBlock": "0.0.0.0/0", "State": "active", **target}]}


NAT_A, NAT_B, IGW = {"NatGatewayId": "nat-0aaa"}, {"NatGatewayId": "nat-0bbb"}, {"GatewayId": "igw-0ccc"}


def expect_vpc(aws, tables: list[dict], endpoint_tables: list[str] | None):
    ec2 = aws.stub("ec2")
    by_vpc = [{"Name": "vpc-id", "Values": [VPC]}]
    ec2.add_response("describe_vpcs", {"Vpcs": [{"VpcId": VPC, "CidrBlock": "10.0.0.0/16", "State": "available"}]},
                     {"VpcIds": [VPC]})
    # two public subnets (1, 2) and two private ones (3 in a, 4 in b)
    ec2.add_response("describe_subnets", {"Subnets": [subnet(1, "a"), subnet(2, "b"), subnet(3, "a"),
                                                      subnet(4, "b")]}, {"Filters": by_vpc})
    ec2.add_response("describe_route_tables", {"RouteTables": tables}, {"Filters": by_vpc})
    if endpoint_tables is None:  # the check stops before it looks at the endpoints
        return
    endpoints = [{"VpcEndpointId": "vpce-0ddd", "VpcEndpointType": "Gateway", "VpcId": VPC, "State": "available",
                  "ServiceName": f"com.amazonaws.{REGION}.s3", "RouteTableIds": endpoint_tables}]
    ec2.add_response("describe_vpc_endpoints", {"VpcEndpoints": endpoints}, {"Filters": [
        *by_vpc, {"Name": "service-name", "Values": [f"com.amazonaws.{REGION}.s3"]},
        {"Name": "vpc-endpoint-type", "Values": ["Gateway"]}]})


VPC_STAGE = {**STAGE, "vpc_id": VPC}


def test_a_vpc_with_nat_in_two_zones_and_the_s3_endpoint_passes(tmp_path, aws):
    # subnet 4 has no table of its own: it uses the main table, which routes to a NAT gateway
    expect_vpc(aws, [route_table("public", [1, 2], IGW), route_table("a", [3], NAT_A),
                     route_table("b", [], NAT_B, main=True)], ["rtb-a", "rtb-b"])
    result = check("vpc", context(tmp_path, aws, VPC_STAGE))
    assert (result.status, result.message) == (
        OK, f"{VPC}: 2 private subnets with NAT egress in {REGION}a, {REGION}b, S3 gateway endpoint on their route "
            "tables")


def test_a_vpc_with_nat_in_one_zone_fails(tmp_path, aws):
    expect_vpc(aws, [route_table("public", [1, 2, 4], IGW, main=True), route_table("a", [3], NAT_A)], None)
    result = check("vpc", context(tmp_path, aws, VPC_STAGE))
    assert (result.status, result.message) == (
        FAIL, f"{VPC} has private subnets routed to a NAT gateway in 1 AZ(s) ({REGION}a), the tasks and mount targets "
              "need 2: add them, or leave vpc_id empty for a new VPC")


def test_a_private_route_table_without_the_s3_endpoint_fails(tmp_path, aws):
    expect_vpc(aws, [route_table("public", [1, 2], IGW, main=True), route_table("a", [3], NAT_A),
                     route_table("b", [4], NAT_B)], ["rtb-a"])
    result = check("vpc", context(tmp_path, aws, VPC_STAGE))
    assert (result.status, result.message) == (
        FAIL, "route tables rtb-b of the private subnets have no S3 gateway endpoint (model downloads would go "
              "through NAT): aws ec2 modify-vpc-endpoint --vpc-endpoint-id vpce-0ddd --add-route-table-ids rtb-b")


def test_a_vpc_that_does_not_exist_fails(tmp_path, aws):
    aws.stub("ec2").add_client_error("describe_vpcs", service_error_code="InvalidVpcID.NotFound", http_status_code=400,
                                     service_message=f"The vpc ID '{VPC}' does not exist",
                                     expected_params={"VpcIds": [VPC]})
    result = check("vpc", context(tmp_path, aws, VPC_STAGE))
    assert result.status == FAIL and result.message.startswith(f"{VPC} does not exist in {REGION} of this account")


def test_a_new_vpc_is_skipped(tmp_path, aws):
    assert check("vpc", context(tmp_path, aws)).status == SKIP


# ---- Docker ------------------------------------------------------------------------------------------------

def test_a_docker_engine_that_answers_passes(tmp_path, aws):
    commands = []
    result = check("docker", context(tmp_path, aws, run=lambda command: commands.append(command) or 0))
    assert (result.status, commands) == (OK, [["docker", "info"]])


def test_a_docker_engine_that_does_not_answer_fails(tmp_path, aws):
    result = check("docker", context(tmp_path, aws, run=lambda command: 1))
    assert result.status == FAIL and result.message.startswith(
        "docker info exited 1: the Docker engine is not running or not reachable, and cdk deploy builds the images "
        "from container/: start it")


def test_no_docker_fails(tmp_path, aws):
    def absent(command):
        raise FileNotFoundError(2, "No such file or directory", command[0])

    result = check("docker", context(tmp_path, aws, run=absent))
    assert result.status == FAIL and result.message.startswith("docker is not installed")


def test_docker_with_ecr_images_is_skipped(tmp_path, aws):
    assert check("docker", context(tmp_path, aws, ECR_STAGE)).status == SKIP


# ---- quotas ------------------------------------------------------------------------------------------------

def test_fargate_vcpu_within_the_quota_passes(tmp_path, aws):
    expect_quota(aws, "fargate", "L-3032A538", 6.0)  # the demo app at max_capacity 4 x 1 vCPU, seeding 2 vCPU
    result = check("fargate-vcpu", context(tmp_path, aws))
    assert (result.status, result.message) == (
        OK, "6 of 6 vCPU at max capacity (demo 4x1 + seeding 1x2); the account's other Fargate tasks count too")


def test_fargate_vcpu_over_the_quota_fails(tmp_path, aws):
    expect_quota(aws, "fargate", "L-3032A538", 4.0)
    stage = with_apps(seg={"cpu": 4096, "memory_mib": 16384, "max_capacity": 2}, ocr={})
    result = check("fargate-vcpu", context(tmp_path, aws, stage))
    assert (result.status, result.message) == (
        FAIL, "at max capacity the stage runs 14 vCPU (seg 2x4 + ocr 4x1 + seeding 1x2), the account may run 4: "
              f"request more (Service Quotas, fargate 'Fargate On-Demand vCPU resource count' (L-3032A538) in "
              f"{REGION}), or lower max_capacity or cpu of the apps")


def test_a_quota_without_an_applied_value_uses_the_aws_default(tmp_path, aws):
    expect_quota(aws, "fargate", "L-3032A538", 4000.0, applied=False)
    assert check("fargate-vcpu", context(tmp_path, aws)).message.startswith("6 of 4000 vCPU")


def test_room_for_the_file_system_passes(tmp_path, aws):
    expect_no_stack(aws, "ModelDelivery-dev-Storage")
    aws.stub("efs").add_response("describe_file_systems", {"FileSystems": [file_system(1), file_system(2)]}, {})
    expect_quota(aws, "elasticfilesystem", "L-848C634D", 1000.0)
    result = check("efs-file-systems", context(tmp_path, aws))
    assert (result.status, result.message) == (OK, "2 of 1000 EFS file systems in use, the storage stack adds 1")


def test_no_room_for_the_file_system_fails(tmp_path, aws):
    expect_no_stack(aws, "ModelDelivery-dev-Storage")
    aws.stub("efs").add_response("describe_file_systems", {"FileSystems": [file_system(1), file_system(2)]}, {})
    expect_quota(aws, "elasticfilesystem", "L-848C634D", 2.0)
    result = check("efs-file-systems", context(tmp_path, aws))
    assert result.status == FAIL and result.message.startswith(
        "2 of 2 EFS file systems exist and the storage stack creates one more: delete unused ones, or request more")


def test_a_deployed_storage_stacks_file_system_is_skipped(tmp_path, aws):
    expect_stack(aws, "ModelDelivery-dev-Storage", {"RepositoryUri": REPOSITORY_URI})
    assert check("efs-file-systems", context(tmp_path, aws)).status == SKIP


INTERNAL_WEB = with_apps(web={"ingress": "internal"})


def test_room_for_the_load_balancers_passes(tmp_path, aws):
    expect_no_stack(aws, "ModelDelivery-dev-Service")
    expect_load_balancers(aws, [load_balancer(1), load_balancer(2), load_balancer(3, "network")])
    expect_quota(aws, "elasticloadbalancing", "L-53DA6B97", 50.0)
    result = check("load-balancers", context(tmp_path, aws, INTERNAL_WEB))
    assert (result.status, result.message) == (
        OK, f"2 of 50 Application Load Balancers in {REGION}, this deploy adds 1 (web)")


def test_no_room_for_a_load_balancer_fails(tmp_path, aws):
    expect_no_stack(aws, "ModelDelivery-dev-Service")
    expect_load_balancers(aws, [load_balancer(1), load_balancer(2)])
    expect_quota(aws, "elasticloadbalancing", "L-53DA6B97", 2.0)
    result = check("load-balancers", context(tmp_path, aws, INTERNAL_WEB))
    assert result.status == FAIL and result.message.startswith(
        f"2 of 2 Application Load Balancers exist in {REGION} and this deploy adds 1 (web): delete unused ones")


def test_a_deployed_apps_load_balancer_is_not_counted_twice(tmp_path, aws):
    expect_stack(aws, "ModelDelivery-dev-Service", {"AppWebUrl": "http://internal-web.example"})
    expect_load_balancers(aws, [load_balancer(1), load_balancer(2)])
    expect_quota(aws, "elasticloadbalancing", "L-53DA6B97", 2.0)
    result = check("load-balancers", context(tmp_path, aws, INTERNAL_WEB))
    assert (result.status, result.message) == (
        OK, f"2 of 2 Application Load Balancers in {REGION}, this deploy adds 0")


def test_load_balancers_without_an_ingress_are_skipped(tmp_path, aws):
    assert check("load-balancers", context(tmp_path, aws)).status == SKIP


# ---- errors a check did not expect -------------------------------------------------------------------------

def test_access_denied_is_the_checks_fail_line_with_the_skip(tmp_path, aws):
    aws.stub("iam").add_client_error("get_role", service_error_code="AccessDenied", http_status_code=403,
                                     service_message="User: arn:aws:sts::111111111111:assumed-role/Dev/x is not "
                                                     "authorized to perform: iam:GetRole")
    result = check("service-linked-roles", context(tmp_path, aws))
    assert result.status == FAIL
    assert result.message.startswith("access denied to GetRole (User: ")
    assert result.message.endswith("iam:GetRole): let this role call it, or pass --skip service-linked-roles")


# ---- whole runs --------------------------------------------------------------------------------------------

def run(tmp_path, aws, stage, *argv, docker=0):
    out, err = io.StringIO(), io.StringIO()
    code = main(["--stage", "dev", "--cdk-json", str(write_cdk_json(tmp_path, stage)), *argv],
                client=aws, s3=no_s3, run=lambda command: docker, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def expect_ready_account(aws, *, ecs_role=True):
    expect_identity(aws)
    expect_stack(aws, "CDKToolkit", {"BootstrapVersion": "30"})
    expect_bootstrap_parameter(aws, "30")
    expect_role(aws, "AWSServiceRoleForECS", exists=ecs_role)
    expect_role(aws, "AWSServiceRoleForApplicationAutoScaling_ECSService")
    expect_lambda_limits(aws, total=1000, unreserved=1000)
    expect_quota(aws, "fargate", "L-3032A538", 6.0)
    expect_no_stack(aws, "ModelDelivery-dev-Storage")
    aws.stub("efs").add_response("describe_file_systems", {"FileSystems": []}, {})
    expect_quota(aws, "elasticfilesystem", "L-848C634D", 1000.0)


def test_a_new_account_ready_for_the_dev_stage_passes_every_check_that_applies(tmp_path, aws):
    expect_ready_account(aws)
    code, out, err = run(tmp_path, aws, STAGE)
    assert code == 0, out + err
    assert out.splitlines() == [
        f"ok   credentials: arn:aws:sts::{ACCOUNT}:assumed-role/Deployer/dev, account {ACCOUNT}, region {REGION}",
        "ok   bootstrap: CDKToolkit UPDATE_COMPLETE, bootstrap version 30 (the templates need 6, lookups 8)",
        "ok   service-linked-roles: AWSServiceRoleForECS and AWSServiceRoleForApplicationAutoScaling_ECSService exist",
        "ok   lambda-concurrency: the stage reserves none (lambda_reserved_concurrency is false); account concurrency "
        "1000, unreserved 1000",
        "skip certificates: no app has a certificate_arn",
        "skip image-tag: image_source is asset: the images are built from container/ at deploy",
        "skip app-images: no app image is in ECR (the demo app, or images of other registries: not checked)",
        "skip pins: no app pins a model version",
        "skip vpc: no vpc_id: the network stack creates the VPC",
        "ok   docker: docker info answered: cdk deploy builds the images from container/",
        "ok   fargate-vcpu: 6 of 6 vCPU at max capacity (demo 4x1 + seeding 1x2); the account's other Fargate tasks "
        "count too",
        "ok   efs-file-systems: 0 of 1000 EFS file systems in use, the storage stack adds 1",
        "skip load-balancers: no app has an ingress: no load balancer",
    ]
    assert err == f"preflight: stage dev in {REGION}: 7 ok, 0 failed, 6 skipped\n"


def test_failed_checks_exit_1_each_on_one_line_and_the_others_still_run(tmp_path, aws):
    expect_ready_account(aws, ecs_role=False)
    code, out, err = run(tmp_path, aws, STAGE, docker=1)
    assert code == 1
    failed = [line for line in out.splitlines() if line.startswith("FAIL")]
    assert [line.split(":")[0] for line in failed] == ["FAIL service-linked-roles", "FAIL docker"]
    assert "aws iam create-service-linked-role --aws-service-name ecs.amazonaws.com" in failed[0]
    assert len(out.splitlines()) == len(CHECKS)
    assert err == (f"preflight: stage dev in {REGION}: 5 ok, 2 failed, 6 skipped: fix the FAIL lines "
                   "(service-linked-roles, docker), then run it again\n")


def test_failed_credentials_stop_the_aws_checks(tmp_path, aws):
    expect_identity(aws, account=OTHER_ACCOUNT)
    code, out, _ = run(tmp_path, aws, STAGE)
    assert code == 1
    lines = out.splitlines()
    assert lines[0].startswith("FAIL credentials: the credentials are for account 222222222222")
    assert [line for line in lines[1:] if not line.endswith("not run: fix the credentials first")] == [
        "ok   docker: docker info answered: cdk deploy builds the images from container/"]


def test_skipped_checks_are_not_run(tmp_path, aws):
    expect_identity(aws)
    code, out, _ = run(tmp_path, aws, STAGE, "--skip", "bootstrap,service-linked-roles", "lambda-concurrency",
                       "--skip", "docker", "fargate-vcpu", "efs-file-systems")
    assert code == 0
    assert out.count("skip ") == 12 and out.count(": --skip") == 6


def test_an_unknown_check_to_skip_is_a_usage_error(tmp_path, aws):
    code, out, err = run(tmp_path, aws, STAGE, "--skip", "dockr")
    assert (code, out) == (2, "")
    assert err.startswith("preflight: error: --skip dockr: no such check; the checks are credentials, bootstrap, ")
    assert err.count("\n") == 1


def test_a_bad_setting_is_a_usage_error(tmp_path, aws):
    code, out, err = run(tmp_path, aws, {**STAGE, "max_azs": 1})
    assert (code, out) == (2, "")
    assert err.startswith("preflight: error: setting 'max_azs' = 1 is not allowed") and err.count("\n") == 1


def test_no_region_anywhere_is_a_usage_error(tmp_path, aws):
    code, _, err = run(tmp_path, aws, {"account": ACCOUNT})
    assert code == 2
    assert err == ("preflight: error: no AWS region: set 'region' for the stage in cdk.json, pass --region, or set "
                   "AWS_REGION\n")


# ---- the Makefile ------------------------------------------------------------------------------------------

def make_dry_run(*args) -> str:
    proc = subprocess.run(["make", "--no-print-directory", "-n", *args], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")
def test_make_deploy_runs_preflight_first_unless_told_not_to():
    plain = make_dry_run("deploy", "STAGE=prod")
    assert ".venv/bin/python -m tools.preflight --stage prod" in plain
    assert plain.index("tools.preflight") < plain.index("cdk deploy")
    assert "--skip pins" not in plain and "tools.pins" not in plain  # the pins are one of preflight's checks
    assert "--skip pins" in make_dry_run("deploy", "CHECK_PINS=0")
    assert "tools.preflight" not in make_dry_run("deploy", "SKIP_PREFLIGHT=1")
    assert ".venv/bin/python -m tools.preflight --stage dev --skip docker" in make_dry_run(
        "preflight", "PREFLIGHT_ARGS=--skip docker")
    assert ".venv/bin/python -m tools.pins check --stage dev" in make_dry_run("check-pins")
