"""cdk-nag acknowledgments: one call per finding, each with the reason it cannot be cured."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_ecs as ecs
from constructs import IConstruct


def acknowledge(construct: IConstruct, finding: str, reason: str) -> None:
    """Acknowledge one (granular) cdk-nag finding on `construct` and everything below it."""
    cdk.Validations.of(construct).acknowledge(cdk.Acknowledgment(id=finding, reason=reason))


def acknowledge_task_definition(task_definition: ecs.TaskDefinition) -> None:
    """The two findings every modelsync task definition carries, for reasons outside our control."""
    acknowledge(
        task_definition.obtain_execution_role(),
        "AwsSolutions-IAM5[Resource::*]",
        "ecr:GetAuthorizationToken has no resource-level permissions (AWS requires Resource *); "
        "image pulls themselves are scoped to the one repository the task uses.",
    )
    acknowledge(
        task_definition,
        "AwsSolutions-ECS2",
        "The environment holds non-secret configuration only (bucket name, key prefix, paths, model "
        "names, port); AWS access comes from the task role, so there is no credential to inject.",
    )


def acknowledge_wildcard_resource(construct: IConstruct, resource: str, reason: str) -> None:
    """Acknowledge IAM5 for exactly one wildcard resource, named the way cdk-nag prints it."""
    acknowledge(
        construct, f"AwsSolutions-IAM5[Resource::{_as_nag_prints(cdk.Stack.of(construct).resolve(resource))}]", reason
    )


def _as_nag_prints(value) -> str:
    """cdk-nag renders Ref as <Id>, GetAtt as <Id.Attr> and joins Fn::Join parts."""
    if isinstance(value, str):
        return value
    if "Ref" in value:
        return f"<{value['Ref']}>"
    if "Fn::GetAtt" in value:
        return f"<{'.'.join(value['Fn::GetAtt'])}>"
    if "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return separator.join(_as_nag_prints(part) for part in parts)
    raise ValueError(f"cannot render {value!r} as cdk-nag does")


def acknowledge_models_prefix(role: IConstruct, objects_arn: str) -> None:
    acknowledge_wildcard_resource(
        role,
        objects_arn,
        "Model objects are created at run time under models/<name>/<version>/; the "
        "models/ prefix is the narrowest ARN that covers them (docs/contracts.md).",
    )


def acknowledge_step_keys(policy: IConstruct, arns: list[str]) -> None:
    """The object patterns one publishing step may write (model_delivery/bucket_keys.py)."""
    for arn in arns:
        acknowledge_wildcard_resource(
            policy,
            arn,
            "Each publishing step writes only its own object names under models/<name>/<version>/, created at run "
            "time; these patterns are those names and nothing else (model_delivery/bucket_keys.py).",
        )


def acknowledge_bucket_files_sync(policy: IConstruct, objects_arn: str, rules_arn: str) -> None:
    """The S3 Files synchronization role's two patterns."""
    acknowledge_models_prefix(policy, objects_arn)
    acknowledge_wildcard_resource(
        policy,
        rules_arn,
        "S3 Files creates and names its own EventBridge rules (prefix DO-NOT-DELETE-S3-Files) when the file system "
        "is created; the prefix is the narrowest ARN that covers them and no other rule.",
    )
