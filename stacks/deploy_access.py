"""The deploy-access stack (setting deploy_access): GitHub's OIDC identity provider and the two roles that
.github/workflows/deploy.yml assumes, so CI deploys with short-lived credentials and no stored keys.

- the deploy role, trusted by the jobs of one GitHub environment of one repository (`sub` =
  `repo:OWNER/NAME:environment:ENV`, `aud` = `sts.amazonaws.com`, both StringEquals): it may assume the CDK
  bootstrap roles of this account and region, and call exactly what `make preflight`, `make seed` and `make up`
  call (tools/), on this stage's resources wherever AWS can scope the call;
- the diff role, trusted by the repository's pull-request jobs (`sub` = `repo:OWNER/NAME:pull_request`): it may
  assume the bootstrap lookup role and nothing else (`cdk diff --method=template`).

The stack lives in its own nested assembly (a `cdk.Stage`), so `cdk deploy --all` (`make deploy`, `make up`, the
workflow) never selects it: the workflow's own role never deploys the stack that defines what that role may do.
`make deploy-access` deploys it by name, with an administrator's credentials, once per stage.

Names the stage's stacks give their resources are CloudFormation's `<stack name>-<logical id>-<suffix>` (the ECS
cluster, the Lambda functions, the ECS services and tasks; lower-cased for the bucket and the ECR repository):
those are scoped by their stack's name prefix. The seeding and signing log groups have names the service stack
sets, used here exactly.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from constructs import Construct

from model_delivery.nag import acknowledge_wildcard_resource
from modelsync.config import DEFAULT_PREFIX
from modelsync.manifest import latest_key, manifest_key
from stacks.app_image import parse_app_image
from stacks.naming import stack_id
from stacks.settings import AppSettings, DeployAccessSettings, StageSettings
from tools.preflight.account import BOOTSTRAP_STACK, SERVICE_LINKED_ROLES
from tools.preflight.cli import DEFAULT_QUALIFIER, QUALIFIER_KEY
from tools.preflight.quotas import APPLICATION_LOAD_BALANCERS, EFS_FILE_SYSTEMS, FARGATE_ON_DEMAND_VCPU

DEPLOY_ACCESS = "DeployAccess"  # the stack's part of its name (stack_id), and the id of the stage it lives in
GITHUB_OIDC_HOST = "token.actions.githubusercontent.com"
GITHUB_AUDIENCE = "sts.amazonaws.com"  # what aws-actions/configure-aws-credentials asks GitHub for
DEPLOY_SESSION_HOURS = 2  # a first `make up` deploys twice and seeds: longer than the default hour
# The bootstrap roles the CDK CLI assumes (aws-cdk-lib's DefaultStackSynthesizer), by what they are for.
BOOTSTRAP_ROLES = {
    "deploy": cdk.DefaultStackSynthesizer.DEFAULT_DEPLOY_ROLE_ARN,
    "file-publishing": cdk.DefaultStackSynthesizer.DEFAULT_FILE_ASSET_PUBLISHING_ROLE_ARN,
    "image-publishing": cdk.DefaultStackSynthesizer.DEFAULT_IMAGE_ASSET_PUBLISHING_ROLE_ARN,
    "lookup": cdk.DefaultStackSynthesizer.DEFAULT_LOOKUP_ROLE_ARN,
}


def github_subject(repository: str, what: str) -> str:
    """The `sub` claim of GitHub's token: `repo:OWNER/NAME:environment:ENV` or `repo:OWNER/NAME:pull_request`."""
    return f"repo:{repository}:{what}"


@dataclass(frozen=True)
class StageTargets:
    """What of the stage the operator tools touch, as names known at synth."""

    seed_log_groups: tuple[str, ...]  # the seeding and signing tasks' log groups (make seed follows them)
    certificate_arns: tuple[str, ...]  # preflight's certificates check
    app_repositories: tuple[tuple[str, str, str], ...]  # (account, region, name) of app images in other ECR repos
    vpc_lookup: bool  # vpc_id is set: preflight describes that VPC


def stage_targets(apps: Iterable[AppSettings], seed_log_groups: Sequence[str], vpc_id: str) -> StageTargets:
    apps = list(apps)
    images = [parse_app_image(app.image, f"setting 'apps.{app.name}.image'") for app in apps]
    return StageTargets(
        seed_log_groups=tuple(seed_log_groups),
        certificate_arns=tuple(dict.fromkeys(app.certificate_arn for app in apps if app.certificate_arn)),
        app_repositories=tuple(dict.fromkeys((i.account, i.region, i.repository) for i in images if i.kind == "ecr")),
        vpc_lookup=bool(vpc_id),
    )


class DeployAccessStack(cdk.Stack):
    """Attributes: provider (the GitHub OIDC provider, created or referenced), deploy_role, diff_role."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        stage: StageSettings,
        access: DeployAccessSettings,
        targets: StageTargets,
        **kwargs,
    ) -> None:
        super().__init__(scope, id, termination_protection=stage.termination_protection, **kwargs)
        self.stage_name = stage.name
        self.qualifier = str(self.node.try_get_context(QUALIFIER_KEY) or DEFAULT_QUALIFIER)  # as preflight reads it
        if access.github_oidc_provider_arn:
            self.provider = iam.OidcProviderNative.from_oidc_provider_arn(
                self, "GitHubProvider", access.github_oidc_provider_arn
            )
        else:
            # No thumbprints: IAM validates GitHub's certificate against its own trusted CAs.
            self.provider = iam.OidcProviderNative(
                self, "GitHubProvider", url=f"https://{GITHUB_OIDC_HOST}", client_ids=[GITHUB_AUDIENCE]
            )
        environment = access.environment(stage.name)
        self.deploy_role = iam.Role(
            self,
            "DeployRole",
            assumed_by=self.github_principal(access.github_repository, f"environment:{environment}"),
            description=f"deploy.yml: make up of stage {stage.name} from GitHub environment {environment}",
            max_session_duration=cdk.Duration.hours(DEPLOY_SESSION_HOURS),
        )
        self.diff_role = iam.Role(
            self,
            "DiffRole",
            assumed_by=self.github_principal(access.github_repository, "pull_request"),
            description=f"deploy.yml: cdk diff of stage {stage.name} on pull requests (lookup role only)",
        )
        for statement in self.deploy_statements(targets):
            self.deploy_role.add_to_policy(statement)
        self.diff_role.add_to_policy(
            iam.PolicyStatement(
                sid="AssumeCdkLookupRole", actions=["sts:AssumeRole"], resources=[self.bootstrap_role("lookup")]
            )
        )
        self.acknowledge_wildcards(targets)
        cdk.CfnOutput(self, "DeployRoleArn", value=self.deploy_role.role_arn)
        cdk.CfnOutput(self, "DiffRoleArn", value=self.diff_role.role_arn)
        cdk.CfnOutput(self, "GitHubProviderArn", value=self.provider.oidc_provider_arn)

    def github_principal(self, repository: str, what: str) -> iam.IPrincipal:
        return iam.OpenIdConnectPrincipal(
            self.provider,
            conditions={
                "StringEquals": {
                    f"{GITHUB_OIDC_HOST}:aud": GITHUB_AUDIENCE,
                    f"{GITHUB_OIDC_HOST}:sub": github_subject(repository, what),
                }
            },
        )

    # ---- ARNs ------------------------------------------------------------------------------------------------

    def bootstrap_role(self, purpose: str) -> str:
        template = BOOTSTRAP_ROLES[purpose].replace("${Qualifier}", self.qualifier)
        return (
            template.replace("${AWS::Partition}", self.partition)
            .replace("${AWS::AccountId}", self.account)
            .replace("${AWS::Region}", self.region)
        )

    def arn(self, service: str, resource: str, *, region: bool = True) -> str:
        """An ARN of this account (and region, unless the service is global)."""
        return f"arn:{self.partition}:{service}:{self.region if region else ''}:{self.account}:{resource}"

    def stack_arn(self, part: str) -> str:
        name = BOOTSTRAP_STACK if part == BOOTSTRAP_STACK else stack_id(self.stage_name, part)
        return self.arn("cloudformation", f"stack/{name}/*")

    def service_prefix(self) -> str:
        """The start of every name CloudFormation generates in the service stack."""
        return f"{stack_id(self.stage_name, 'Service')}-"

    def storage_bucket(self) -> str:
        """The storage stack's buckets (S3 lower-cases the generated names)."""
        return f"arn:{self.partition}:s3:::{stack_id(self.stage_name, 'Storage').lower()}-*"

    # ---- the deploy role's statements ------------------------------------------------------------------------

    def deploy_statements(self, targets: StageTargets) -> list[iam.PolicyStatement]:
        bucket = self.storage_bucket()
        cluster = self.arn("ecs", f"cluster/{self.service_prefix()}*")
        statements = [
            # cdk deploy (make up): everything CloudFormation does goes through these roles.
            iam.PolicyStatement(
                sid="AssumeCdkBootstrapRoles",
                actions=["sts:AssumeRole"],
                resources=[self.bootstrap_role(purpose) for purpose in BOOTSTRAP_ROLES],
            ),
            # tools/seed.py, tools/up.py (service outputs); preflight (bootstrap stack, storage and service outputs).
            iam.PolicyStatement(
                sid="ReadStageStacks",
                actions=["cloudformation:DescribeStacks"],
                resources=[self.stack_arn(part) for part in (BOOTSTRAP_STACK, "Storage", "Service")],
            ),
            # preflight lambda-concurrency: the deployed functions' reservations.
            iam.PolicyStatement(
                sid="ListServiceStackResources",
                actions=["cloudformation:ListStackResources"],
                resources=[self.stack_arn("Service")],
            ),
            # preflight bootstrap: the version every template's CheckBootstrapVersion rule reads.
            iam.PolicyStatement(
                sid="ReadBootstrapVersion",
                actions=["ssm:GetParameter"],
                resources=[
                    self.arn(
                        "ssm",
                        "parameter"
                        + cdk.DefaultStackSynthesizer.DEFAULT_BOOTSTRAP_STACK_VERSION_SSM_PARAMETER.replace(
                            "${Qualifier}", self.qualifier
                        ),
                    )
                ],
            ),
            # preflight service-linked-roles.
            iam.PolicyStatement(
                sid="CheckServiceLinkedRoles",
                actions=["iam:GetRole"],
                resources=[
                    self.arn("iam", f"role/aws-service-role/{service}/{role}", region=False)
                    for role, service in SERVICE_LINKED_ROLES
                ],
            ),
            # make seed: invoke the seed runner; preflight lambda-concurrency: the functions' reservations.
            iam.PolicyStatement(
                sid="ServiceStackFunctions",
                actions=["lambda:GetFunctionConcurrency", "lambda:InvokeFunction"],
                resources=[self.arn("lambda", f"function:{self.service_prefix()}*")],
            ),
            # make seed: follow the seeding and signing tasks' logs.
            iam.PolicyStatement(
                sid="FollowSeedLogs",
                actions=["logs:GetLogEvents"],
                resources=[self.arn("logs", f"log-group:{group}:log-stream:*") for group in targets.seed_log_groups],
            ),
            # make seed: the tasks it starts; make up: the apps' services.
            iam.PolicyStatement(
                sid="WatchStageTasks",
                actions=["ecs:DescribeServices", "ecs:DescribeTasks"],
                resources=[
                    self.arn("ecs", f"service/{self.service_prefix()}*/*"),
                    self.arn("ecs", f"task/{self.service_prefix()}*/*"),
                ],
            ),
            # make seed: find the signing task (ListTasks takes no task or service resource, only the cluster).
            iam.PolicyStatement(
                sid="ListStageTasks",
                actions=["ecs:ListTasks"],
                resources=["*"],
                conditions={"ArnLike": {"ecs:cluster": cluster}},
            ),
            # make up: is each model seeded (LATEST); preflight pins: does a pinned version exist (its manifest).
            iam.PolicyStatement(
                sid="ReadModelPointers",
                actions=["s3:GetObject"],
                resources=[
                    f"{bucket}/{latest_key(DEFAULT_PREFIX, '*')}",
                    f"{bucket}/{manifest_key(DEFAULT_PREFIX, '*', '*')}",
                ],
            ),
            # A missing LATEST must read as 404 (not seeded), not 403.
            iam.PolicyStatement(
                sid="ListModelsPrefix",
                actions=["s3:ListBucket"],
                resources=[bucket],
                conditions={"StringLike": {"s3:prefix": [DEFAULT_PREFIX, f"{DEFAULT_PREFIX}*"]}},
            ),
            # The objects are SSE-KMS under the storage key, whose id is not known here: any key, through S3 only,
            # for objects of the stage's buckets only (the encryption context S3 sends names the bucket).
            iam.PolicyStatement(
                sid="DecryptModelPointersViaS3",
                actions=["kms:Decrypt"],
                resources=[self.arn("kms", "key/*")],
                conditions={
                    "StringEquals": {"kms:ViaService": f"s3.{self.region}.amazonaws.com"},
                    "ArnLike": {"kms:EncryptionContext:aws:s3:arn": bucket},
                },
            ),
            # preflight fargate-vcpu, efs-file-systems, load-balancers: the applied quota values.
            iam.PolicyStatement(
                sid="ReadQuotas",
                actions=["servicequotas:GetServiceQuota"],
                resources=[
                    self.arn("servicequotas", f"{quota.service_code}/{quota.code}")
                    for quota in (FARGATE_ON_DEMAND_VCPU, EFS_FILE_SYSTEMS, APPLICATION_LOAD_BALANCERS)
                ],
            ),
            # preflight: account-wide reads with no resource to name (AWS requires Resource *).
            iam.PolicyStatement(
                sid="ReadAccountLimits",
                actions=[
                    "elasticfilesystem:DescribeFileSystems",
                    "elasticloadbalancing:DescribeLoadBalancers",
                    "lambda:GetAccountSettings",
                    "servicequotas:GetAWSDefaultServiceQuota",
                ],
                resources=["*"],
            ),
            # preflight image-tag and app-images: the project repository, and app images in other ECR repositories.
            iam.PolicyStatement(
                sid="DescribeImages",
                actions=["ecr:DescribeImages"],
                resources=[
                    self.arn("ecr", f"repository/{stack_id(self.stage_name, 'Storage').lower()}-*"),
                    *(
                        f"arn:{self.partition}:ecr:{region}:{account}:repository/{name}"
                        for account, region, name in targets.app_repositories
                    ),
                ],
            ),
        ]
        if targets.certificate_arns:  # preflight certificates
            statements.append(
                iam.PolicyStatement(
                    sid="DescribeCertificates",
                    actions=["acm:DescribeCertificate"],
                    resources=list(targets.certificate_arns),
                )
            )
        if targets.vpc_lookup:  # preflight vpc: describe calls take no resource; only in the stage's region
            statements.append(
                iam.PolicyStatement(
                    sid="DescribeStageVpc",
                    actions=[
                        "ec2:DescribeRouteTables",
                        "ec2:DescribeSubnets",
                        "ec2:DescribeVpcEndpoints",
                        "ec2:DescribeVpcs",
                    ],
                    resources=["*"],
                    conditions={"StringEquals": {"aws:RequestedRegion": self.region}},
                )
            )
        return statements

    def acknowledge_wildcards(self, targets: StageTargets) -> None:
        """cdk-nag IAM5, one acknowledgment per wildcard resource of the deploy role, each with its reason."""
        reasons = {
            "*": "Describe/list calls that AWS authorizes on Resource * only (ecs:ListTasks is limited to the "
            "stage's cluster by the ecs:cluster condition; the EC2 describes to the stage's region).",
            self.arn("lambda", f"function:{self.service_prefix()}*"): "The service stack's functions have names "
            "CloudFormation generates (<stack>-<logical id>-<suffix>): the stack's prefix is the narrowest name.",
            self.arn("ecs", f"service/{self.service_prefix()}*/*"): "Service ARNs include the cluster's generated "
            "name (<stack>-<logical id>-<suffix>): the service stack's prefix is the narrowest name.",
            self.arn("ecs", f"task/{self.service_prefix()}*/*"): "Tasks are started at run time in the service "
            "stack's cluster, whose name CloudFormation generates: its prefix is the narrowest name.",
            f"{self.storage_bucket()}/{latest_key(DEFAULT_PREFIX, '*')}": "LATEST pointers of models published at "
            "run time, in the storage stack's bucket (its name is generated: the stack's prefix).",
            f"{self.storage_bucket()}/{manifest_key(DEFAULT_PREFIX, '*', '*')}": "Manifests of versions published "
            "at run time, in the storage stack's bucket (its name is generated: the stack's prefix).",
            self.storage_bucket(): "The storage stack's bucket, whose name CloudFormation generates; listing is "
            "limited to the models/ prefix by the s3:prefix condition.",
            self.arn("kms", "key/*"): "The storage key's id is generated; kms:Decrypt is limited to calls S3 makes "
            "for objects of the stage's buckets (kms:ViaService and the aws:s3:arn encryption context).",
            self.arn("ecr", f"repository/{stack_id(self.stage_name, 'Storage').lower()}-*"): "The project "
            "repository's name is generated by CloudFormation from the storage stack's name.",
        }
        for part in (BOOTSTRAP_STACK, "Storage", "Service"):
            reasons[self.stack_arn(part)] = (
                "Exactly this stack: a stack ARN ends in the id CloudFormation assigns at creation."
            )
        for group in targets.seed_log_groups:
            reasons[self.arn("logs", f"log-group:{group}:log-stream:*")] = (
                "One stream per task, named at run time, in exactly this log group of the seeding or signing task."
            )
        for resource, reason in reasons.items():
            acknowledge_wildcard_resource(self.deploy_role, resource, reason)
