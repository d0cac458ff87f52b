"""Network stack: the VPC (new, or an existing one by id) and the EFS mirror's security group.

The mirror's group is here because the storage stack's mount targets use it and it is never replaced in
normal operation (its description is fixed). The tasks' groups live with their tasks in the service stack, and
so do the rules that let them reach the mirror (stacks/task_groups.py): adding or removing an app, or replacing
a task's group, never changes this stack.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_kms as kms
from constructs import Construct

from model_delivery.logs import allow_log_groups, log_group
from model_delivery.scanner import skip_checkov
from stacks.errors import SettingsError
from stacks.settings import NetworkSettings, StageSettings

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


def mirror_security_group(scope: Construct, id: str, *, vpc: ec2.IVpc) -> ec2.SecurityGroup:
    """The EFS mirror's group: nothing in until a task that mounts the mirror adds its rule (task_groups.py)."""
    return ec2.SecurityGroup(
        scope,
        id,
        vpc=vpc,
        allow_all_outbound=False,
        # Unchanged since the first release: a new description would replace the group the mount targets use.
        description="EFS model mirror: NFS from the service and seeding tasks only",
    )


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
    def __init__(self, scope: Construct, id: str, *, stage: StageSettings, network: NetworkSettings, **kwargs) -> None:
        super().__init__(scope, id, **kwargs)
        if network.vpc_id:
            # Looked up at synth (needs account+region; the CLI caches the answer in cdk.context.json).
            self.vpc = ec2.Vpc.from_lookup(self, "Vpc", vpc_id=network.vpc_id)
            _check_private_subnets(self.vpc, network.vpc_id)
        else:
            self.vpc = self._new_vpc(stage, network)
        # "SecurityGroups/FileSystem": the logical id it had when the tasks' groups were here too.
        self.file_system_security_group = mirror_security_group(
            Construct(self, "SecurityGroups"), "FileSystem", vpc=self.vpc
        )

    def _new_vpc(self, stage: StageSettings, network: NetworkSettings) -> ec2.Vpc:
        # The flow logs' own key: the store's key is in the storage stack, which deploys after this one and
        # depends on it, and the flow log belongs beside its VPC (scanners check them in one template). Same
        # policy for CloudWatch Logs: only the stage's log groups (model_delivery/logs.py). The one stateful
        # resource outside the storage stack, kept like those: losing it makes the flow logs unreadable.
        self.logs_key = kms.Key(
            self,
            "FlowLogsKey",
            enable_key_rotation=True,
            removal_policy=stage.stateful_removal_policy,
            description=f"Model delivery ({stage.name}): encrypts the VPC flow logs",
        )
        encryption = allow_log_groups(self.logs_key, stage.log_group_prefix)
        flow_log_group = log_group(self, "FlowLogs", stage.log_retention_days, encryption)
        vpc = ec2.Vpc(
            self,
            "Vpc",
            max_azs=network.max_azs,
            nat_gateways=network.nat_gateways,
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
