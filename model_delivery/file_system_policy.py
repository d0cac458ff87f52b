"""Statements both file systems' policies share (the EFS mirror and the bucket's S3 Files file system)."""

from __future__ import annotations

from typing import Any

from aws_cdk import aws_iam as iam


def deny_without_tls(actions: list[str], **statement: Any) -> iam.PolicyStatement:
    """Every client action in `actions` refused to everyone over a connection without TLS; `statement` adds what a
    policy's grammar needs (S3 Files wants `resources`, EFS none)."""
    return iam.PolicyStatement(
        sid="DenyWithoutTls",
        effect=iam.Effect.DENY,
        principals=[iam.AnyPrincipal()],
        actions=actions,
        conditions={"Bool": {"aws:SecureTransport": "false"}},
        **statement,
    )
