"""The security group of a task (an app's service, the seeding task): HTTPS out for S3, ECR, logs and the model
sources, and, for a task that mounts a file system (the EFS mirror, the bucket's S3 Files), NFS to its group,
with that group's ingress rule created here too (CDK puts a rule between groups of two stacks in the peer's
stack). So the group, its rules and the tasks that use it are in one stack: replacing the group never leaves
another stack pointing at the old one."""

from __future__ import annotations

from aws_cdk import aws_ec2 as ec2
from constructs import Construct

NFS_PORT = 2049
HTTPS_PORT = 443


def task_security_group(
    scope: Construct,
    id: str,
    *,
    vpc: ec2.IVpc,
    who: str,
    description: str,
    nfs: tuple[str, ec2.ISecurityGroup] | None,
) -> ec2.SecurityGroup:
    """`who` names the tasks in the rules' descriptions (e.g. "app ocr", "the seeding task"); `nfs`: (what, its
    group) for a task that mounts a file system (the EFS mirror, the bucket's S3 Files file system)."""
    group = ec2.SecurityGroup(scope, id, vpc=vpc, allow_all_outbound=False, description=description)
    group.add_egress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(HTTPS_PORT), f"HTTPS out of {who}")
    if nfs is not None:
        what, peer = nfs
        group.connections.allow_to(peer, ec2.Port.tcp(NFS_PORT), f"NFS between {who} and {what}")
    return group
