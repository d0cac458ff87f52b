"""checkov skips, written into a resource's CloudFormation Metadata in the form checkov reads
(`Metadata: {"checkov": {"skip": [{"id": "CKV_AWS_xx", "comment": "why"}]}}`, see checkov's
cloudformation/context_parser.py). Only for controls that cannot apply; tests/infra/test_checkov.py lists
every skip against an expected list, so none is added silently."""

from __future__ import annotations

import aws_cdk as cdk
from constructs import IConstruct

from model_delivery.errors import ModelDeliveryError


def skip_checkov(construct: IConstruct, check_id: str, reason: str) -> None:
    """Skip one checkov check on `construct`'s CloudFormation resource (itself or its default child)."""
    resource = construct if isinstance(construct, cdk.CfnResource) else construct.node.default_child
    if not isinstance(resource, cdk.CfnResource):
        raise ModelDeliveryError(
            f"skip_checkov: {construct.node.path} has no CloudFormation resource to skip "
            f"{check_id} on: give the resource itself"
        )
    if not reason.strip():
        raise ModelDeliveryError(f"skip_checkov {check_id} on {construct.node.path}: give the reason")
    checkov = resource.get_metadata("checkov") or {}
    skip = {"id": check_id, "comment": reason}
    if skip in checkov.get("skip", []):  # a shared resource (e.g. a singleton Lambda) asked twice
        return
    skips = [*checkov.get("skip", []), skip]
    resource.add_metadata("checkov", {**checkov, "skip": skips})
