"""Network stack: the VPC (new, or an existing one by id) and the three security groups.

All three security groups (service tasks, seeding task, EFS mount targets) live here, with every
rule between them. Why here: the storage stack needs the EFS group and the service stack needs
the task groups, and both already depend on this stack. If the task groups lived in the service
stack, the EFS group's ingress rules would point from storage to service while service points to
storage, a cycle; keeping the pair in one stack that both consume keeps dependencies one way
(network <- storage <- service).
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_kms as kms
from constructs import Construct

from model_delivery import nag
from model_delivery.logs import allow_log_groups, log_group
from model_delivery.scanner import skip_checkov
from stacks.errors import SettingsError
from stacks.settings import Settings
from stacks.storage import log_group_prefix, stateful_removal_policy

EC23_REASONS = {
    "public": "An internet-facing load balancer (setting ingress=public) must accept any client; it serves HTTPS "
    "only (HTTP redirects) and only the listener ports are open. Narrow it with ingress_cidrs.",
    "internal": "The only source is this VPC's own CIDR block (a deploy-time value cdk-nag cannot read at synth), "
    "on the listener ports. Narrow it with ingress_cidrs.",
}
HTTP_FROM_ANYWHERE = (
    "Public load balancer: port 80 from anywhere only answers with a redirect to HTTPS (the listener "
    "serves nothing over HTTP); narrow it with ingress_cidrs."
)
NFS_PORT = 2049
HTTPS_PORT = 443
HTTP_PORT = 80
# CDK's custom resource that strips the default security group's rules (feature flag restrictDefaultSecurityGroup).
RESTRICT_DEFAULT_SG_PROVIDER = "Custom::VpcRestrictDefaultSGCustomResourceProvider"
CDK_PROVIDER_SKIPS = {
    "CKV_AWS_115": "A Lambda CDK generates and owns (restrictDefaultSecurityGroup provider); called only by "
    "CloudFormation during deploys, so there is nothing for reserved concurrency to limit.",
    "CKV_AWS_116": "A Lambda CDK generates and owns (restrictDefaultSecurityGroup provider); CloudFormation invokes it "
    "synchronously and reports a failure as a failed deploy, there is no async event to keep.",
    "CKV_AWS_117": "A Lambda CDK generates and owns (restrictDefaultSecurityGroup provider); it calls the EC2 API only "
    "and CDK's provider framework exposes no VPC placement for it.",
}


class ModelSecurityGroups(Construct):
    """Service, seeding and EFS security groups. The EFS group's only ingress is NFS from the two tasks.
    With an ingress, also the load balancer's: HTTPS (and HTTP, redirected or internal) from the allowed
    networks only; the rules between it and the service on app_port are added when the service becomes
    its target (the service accepts nothing else)."""

    def __init__(self, scope: Construct, id: str, *, vpc: ec2.IVpc, settings: Settings) -> None:
        super().__init__(scope, id)
        self.service = ec2.SecurityGroup(
            self,
            "Service",
            vpc=vpc,
            allow_all_outbound=False,
            description="Model service tasks: HTTPS out (S3, ECR, logs), NFS to EFS",
        )
        self.seed = ec2.SecurityGroup(
            self,
            "Seed",
            vpc=vpc,
            allow_all_outbound=False,
            description="Seeding task: HTTPS out (Zenodo, PaddleOCR sources, S3), NFS to EFS",
        )
        self.file_system = ec2.SecurityGroup(
            self,
            "FileSystem",
            vpc=vpc,
            allow_all_outbound=False,
            description="EFS model mirror: NFS from the service and seeding tasks only",
        )
        for name, tasks in (("service", self.service), ("seeding", self.seed)):
            tasks.add_egress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(HTTPS_PORT), f"HTTPS out of the {name} task")
            tasks.add_egress_rule(self.file_system, ec2.Port.tcp(NFS_PORT), "NFS to the model mirror")
            self.file_system.add_ingress_rule(tasks, ec2.Port.tcp(NFS_PORT), f"NFS from the {name} task")
        self.load_balancer = None if settings.ingress == "none" else self._load_balancer(vpc, settings)

    def _load_balancer(self, vpc: ec2.IVpc, settings: Settings) -> ec2.SecurityGroup:
        group = ec2.SecurityGroup(
            self,
            "LoadBalancer",
            vpc=vpc,
            allow_all_outbound=False,
            description=f"Model service load balancer ({settings.ingress}): listeners in, "
            "app port to the service tasks",
        )
        # Public: anyone by default (it serves HTTPS only); internal: the VPC, unless narrowed.
        default = ["0.0.0.0/0"] if settings.ingress == "public" else [vpc.vpc_cidr_block]
        ports = [HTTPS_PORT, HTTP_PORT] if settings.certificate_arn else [HTTP_PORT]
        for cidr in settings.ingress_cidrs or default:
            source = "the VPC" if cdk.Token.is_unresolved(cidr) else cidr
            for port in ports:
                what = "HTTP, redirected to HTTPS," if port == HTTP_PORT and settings.certificate_arn else "listener"
                group.add_ingress_rule(ec2.Peer.ipv4(cidr), ec2.Port.tcp(port), f"{what} port {port} from {source}")
        if "0.0.0.0/0" in (settings.ingress_cidrs or default) and HTTP_PORT in ports:
            skip_checkov(group, "CKV_AWS_260", HTTP_FROM_ANYWHERE)
        if not settings.ingress_cidrs:  # explicit CIDRs are literal and pass EC23 on their own
            nag.acknowledge(group, "AwsSolutions-EC23", EC23_REASONS[settings.ingress])
        return group


def _check_private_subnets(vpc: ec2.IVpc, vpc_id: str) -> None:
    """Tasks and mount targets go to private subnets with egress (seeding downloads through NAT)."""
    azs = {subnet.availability_zone for subnet in vpc.private_subnets}
    if len(azs) < 2:
        raise SettingsError(
            f"setting 'vpc_id' = {vpc_id!r} is not allowed: the VPC needs private subnets with a "
            f"route to a NAT gateway in at least 2 AZs (found {len(azs)}); add them, or leave "
            "vpc_id empty for a new VPC"
        )


class NetworkStack(cdk.Stack):
    def __init__(self, scope: Construct, id: str, *, settings: Settings, **kwargs) -> None:
        super().__init__(scope, id, **kwargs)
        if settings.uses_existing_vpc:
            # Looked up at synth (needs account+region; the CLI caches the answer in cdk.context.json).
            self.vpc = ec2.Vpc.from_lookup(self, "Vpc", vpc_id=settings.vpc_id)
            _check_private_subnets(self.vpc, settings.vpc_id)
        else:
            self.vpc = self._new_vpc(settings)
        self.security_groups = ModelSecurityGroups(self, "SecurityGroups", vpc=self.vpc, settings=settings)

    def _new_vpc(self, settings: Settings) -> ec2.Vpc:
        # The flow logs' own key: the store's key is in the storage stack, which deploys after this one and
        # depends on it, and the flow log belongs beside its VPC (scanners check them in one template). Same
        # policy for CloudWatch Logs: only the stage's log groups (model_delivery/logs.py). The one stateful
        # resource outside the storage stack, kept like those: losing it makes the flow logs unreadable.
        self.logs_key = kms.Key(
            self,
            "FlowLogsKey",
            enable_key_rotation=True,
            removal_policy=stateful_removal_policy(settings),
            description=f"Model delivery ({settings.stage}): encrypts the VPC flow logs",
        )
        encryption = allow_log_groups(self.logs_key, log_group_prefix(settings))
        flow_log_group = log_group(self, "FlowLogs", settings.log_retention_days, encryption)
        vpc = ec2.Vpc(
            self,
            "Vpc",
            max_azs=settings.max_azs,
            nat_gateways=settings.nat_gateways,
            subnet_configuration=[
                ec2.SubnetConfiguration(name="public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=24),
                ec2.SubnetConfiguration(name="private", subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS, cidr_mask=20),
            ],
            # Model downloads from S3 stay on the AWS network and skip NAT data charges.
            gateway_endpoints={"S3": ec2.GatewayVpcEndpointOptions(service=ec2.GatewayVpcEndpointAwsService.S3)},
            flow_logs={
                "All": ec2.FlowLogOptions(
                    destination=ec2.FlowLogDestination.to_cloud_watch_logs(flow_log_group),
                    traffic_type=ec2.FlowLogTrafficType.ALL,
                )
            },
        )
        provider = self.node.try_find_child(RESTRICT_DEFAULT_SG_PROVIDER)
        if provider is not None:  # only with the feature flag on (cdk.json has it)
            for check_id, reason in CDK_PROVIDER_SKIPS.items():
                skip_checkov(provider.node.find_child("Handler"), check_id, reason)
        return vpc
