"""The security group of a task (an app's service, the seeding task): HTTPS out for S3, ECR, logs and the model
sources, and, for a task that mounts the EFS mirror, NFS to the mirror's group, with that group's ingress rule
created here too (CDK puts a rule between groups of two stacks in the peer's stack). So the group, its rules and
the tasks that use it are in one stack: replacing the group never leaves another stack pointing at the old one."""

from __future__ import annotations

from aws_cdk import aws_ec2 as ec2
from constructs import Construct

NFS_PORT = 2049
HTTPS_PORT = 443


def task_security_group(
    scope: Construct, id: str, *, vpc: ec2.IVpc, who: str, description: str, mirror: ec2.ISecurityGroup | None
) -> ec2.SecurityGroup:
    """`who` names the tasks in the rules' descriptions (e.g. "app ocr", "the seeding task")."""
    group = ec2.SecurityGroup(scope, id, vpc=vpc, allow_all_outbound=False, description=description)
    group.add_egress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(HTTPS_PORT), f"HTTPS out of {who}")
    if mirror is not None:
        group.connections.allow_to(mirror, ec2.Port.tcp(NFS_PORT), f"NFS between {who} and the model mirror")
    return group
