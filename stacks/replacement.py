"""A replaced producer resource reaches the stacks that reference it on the next deploy.

Cross-stack references are weak (`Fn::GetStackOutput`, cdk.json), resolved only when the consumer stack
is deployed, and the CLI skips a stack whose template did not change. A resource that CloudFormation
replaces (a security group whose description changed, an access point whose POSIX user changed, a
managed policy whose description changed) gets a new physical id under the same logical id: the
producer's output changes value but not name, the consumer's template stays the same, and `make deploy`
leaves the consumer on the old resource ("no changes").

This aspect puts a fingerprint of the properties whose change means replacement into the logical id of
those resources. A replacement then changes the logical id, so CDK's published output gets a new name
(it is derived from the logical id) and every consumer's `Fn::GetStackOutput` names that new output: the
consumer's template changes where the value is used, and CloudFormation resolves the new value there.

Only stateless resources are renamed. A bucket, key, file system or repository with a new logical id would
be a new, empty resource: their replacing properties are simply not changed in place (docs/infrastructure.md).
"""

from __future__ import annotations

import hashlib
import json

import aws_cdk as cdk
import jsii
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_efs as efs
from aws_cdk import aws_iam as iam
from constructs import IConstruct

# Per type, the (Python) names of the properties whose change makes CloudFormation replace the resource
# (CloudFormation resource reference, "Update requires: Replacement").
REPLACING_PROPERTIES: dict[type, tuple[str, ...]] = {
    ec2.CfnSecurityGroup: ("group_description", "group_name", "vpc_id"),
    efs.CfnAccessPoint: ("file_system_id", "posix_user", "root_directory"),
    iam.CfnManagedPolicy: ("description", "managed_policy_name", "path"),
}
FINGERPRINT_CHARS = 8


def replacement_fingerprint(resource: cdk.CfnResource, names: tuple[str, ...]) -> str:
    stack = cdk.Stack.of(resource)
    values = {name: stack.resolve(getattr(resource, name)) for name in names}
    canonical = json.dumps(values, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:FINGERPRINT_CHARS].upper()


@jsii.implements(cdk.IAspect)
class NewIdOnReplacement:
    """Appends the replacement fingerprint to the logical id of the resources in REPLACING_PROPERTIES."""

    def visit(self, node: IConstruct) -> None:
        if not isinstance(node, cdk.CfnResource):
            return
        names = next((names for type_, names in REPLACING_PROPERTIES.items() if isinstance(node, type_)), None)
        if names is not None:
            logical_id = cdk.Stack.of(node).resolve(node.logical_id)
            node.override_logical_id(f"{logical_id}{replacement_fingerprint(node, names)}")


def rename_on_replacement(scope: IConstruct) -> None:
    # Mutating priority: runs before CDK resolves the cross-stack references (which name the outputs).
    cdk.Aspects.of(scope).add(NewIdOnReplacement(), priority=cdk.AspectPriority.MUTATING)
