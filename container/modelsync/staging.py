"""The staging pointer `<prefix><name>/STAGED`: a version a seed without the signing key uploaded (files and
manifest, no signatures, LATEST untouched), waiting for the signing step (`modelsync sign`), which re-hashes
it, signs it, moves LATEST and then removes the pointer (docs/contracts.md, "Bucket layout")."""

from __future__ import annotations

import json

import botocore.exceptions as bx

from .config import check_version
from .errors import JobFailed, ModelsyncError
from .manifest import MAX_LATEST_BYTES, model_prefix, now_created
from .s3 import get_small_object, translate_client_error
from .signing import parse_json_object

STAGED = "STAGED"


def staged_key(prefix: str, name: str) -> str:
    return model_prefix(prefix, name) + STAGED


def write_staged(client, bucket: str, prefix: str, name: str, version: str) -> None:
    key = staged_key(prefix, name)
    body = json.dumps({"version": version, "staged": now_created()}).encode()
    try:
        client.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json")
    except (bx.ClientError, bx.BotoCoreError) as exc:
        raise translate_client_error(exc, bucket=bucket, key=key) from None


def read_staged(client, bucket: str, prefix: str, name: str) -> str | None:
    """The staged version of name, or None; a pointer that names no valid version is JobFailed."""
    key = staged_key(prefix, name)
    data = parse_json_object(get_small_object(client, bucket, key, max_bytes=MAX_LATEST_BYTES, what="staging pointer"))
    if data is None:
        return None
    try:
        return check_version(data.get("version"), name=name)
    except (ModelsyncError, TypeError):
        raise JobFailed(f"s3://{bucket}/{key} names no valid version: run the seed again") from None


def clear_staged(client, bucket: str, prefix: str, name: str, version: str) -> None:
    """Remove the pointer if it still names version (a seed may have staged a newer one meanwhile; a pointer
    replaced between this read and the delete is staged again by the next seed, which finds LATEST behind)."""
    if read_staged(client, bucket, prefix, name) != version:
        return
    key = staged_key(prefix, name)
    try:
        client.delete_object(Bucket=bucket, Key=key)
    except (bx.ClientError, bx.BotoCoreError) as exc:
        raise translate_client_error(exc, bucket=bucket, key=key) from None
