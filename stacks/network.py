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
from constructs import Construct

from stacks.errors import SettingsError
from stacks.log_groups import log_group
from stacks.settings import Settings

NFS_PORT = 2049
HTTPS_PORT = 443


class ModelSecurityGroups(Construct):
    """Service, seeding and EFS security groups. The EFS group's only ingress is NFS from the two tasks."""

    def __init__(self, scope: Construct, id: str, *, vpc: ec2.IVpc) -> None:
        super().__init__(scope, id)
        self.service = ec2.SecurityGroup(self, "Service", vpc=vpc, allow_all_outbound=False,
                                         description="Model service tasks: HTTPS out (S3, ECR, logs), NFS to EFS")
        self.seed = ec2.SecurityGroup(self, "Seed", vpc=vpc, allow_all_outbound=False,
                                      description="Seeding task: HTTPS out (Zenodo, PaddleOCR sources, S3), NFS to EFS")
        self.file_system = ec2.SecurityGroup(self, "FileSystem", vpc=vpc, allow_all_outbound=False,
                                             description="EFS model mirror: NFS from the service and seeding tasks only")
        for name, tasks in (("service", self.service), ("seeding", self.seed)):
            tasks.add_egress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(HTTPS_PORT), f"HTTPS out of the {name} task")
            tasks.add_egress_rule(self.file_system, ec2.Port.tcp(NFS_PORT), "NFS to the model mirror")
            self.file_system.add_ingress_rule(tasks, ec2.Port.tcp(NFS_PORT), f"NFS from the {name} task")


def _check_private_subnets(vpc: ec2.IVpc, vpc_id: str) -> None:
    """Tasks and mount targets go to private subnets with egress (seeding downloads through NAT)."""
    azs = {subnet.availability_zone for subnet in vpc.private_subnets}
    if len(azs) < 2:
        raise SettingsError(f"setting 'vpc_id' = {vpc_id!r} is not allowed: the VPC needs private subnets with a "
                            f"route to a NAT gateway in at least 2 AZs (found {len(azs)}); add them, or leave "
                            "vpc_id empty for a new VPC")


class NetworkStack(cdk.Stack):
    def __init__(self, scope: Construct, id: str, *, settings: Settings, **kwargs) -> None:
        super().__init__(scope, id, **kwargs)
        if settings.uses_existing_vpc:
            # Looked up at synth (needs account+region; the CLI caches the answer in cdk.context.json).
            self.vpc = ec2.Vpc.from_lookup(self, "Vpc", vpc_id=settings.vpc_id)
            _check_private_subnets(self.vpc, settings.vpc_id)
        else:
            self.vpc = self._new_vpc(settings)
        self.security_groups = ModelSecurityGroups(self, "SecurityGroups", vpc=self.vpc)

    def _new_vpc(self, settings: Settings) -> ec2.Vpc:
        flow_log_group = log_group(self, "FlowLogs", settings)
        return ec2.Vpc(
            self, "Vpc",
            max_azs=settings.max_azs,
            nat_gateways=settings.nat_gateways,
            subnet_configuration=[
                ec2.SubnetConfiguration(name="public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=24),
                ec2.SubnetConfiguration(name="private", subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS, cidr_mask=20),
            ],
            # Model downloads from S3 stay on the AWS network and skip NAT data charges.
            gateway_endpoints={"S3": ec2.GatewayVpcEndpointOptions(service=ec2.GatewayVpcEndpointAwsService.S3)},
            flow_logs={"All": ec2.FlowLogOptions(
                destination=ec2.FlowLogDestination.to_cloud_watch_logs(flow_log_group),
                traffic_type=ec2.FlowLogTrafficType.ALL)},
        )
