"""The S3 client and the translation of S3 failures into one-line errors."""

from __future__ import annotations

import os

import boto3
import botocore.exceptions as bx
from botocore.config import Config

from .errors import JobFailed, ModelsyncError

DEFAULT_MAX_ATTEMPTS = 5


def make_client(*, max_pool_connections: int = 32):
    """A boto3 S3 client: standard credential chain, AWS_ENDPOINT_URL(_S3) honoured by boto3 itself,
    adaptive retries (throttling and 5xx backed off client-side), bounded attempts."""
    attempts = int(os.environ.get("AWS_MAX_ATTEMPTS") or DEFAULT_MAX_ATTEMPTS)
    config = Config(
        max_pool_connections=max_pool_connections,
        retries={"mode": "adaptive", "total_max_attempts": attempts},
        connect_timeout=10,
        read_timeout=60,
        tcp_keepalive=True,
        # We verify every downloaded byte with our own sha256; a second CRC pass only costs CPU.
        response_checksum_validation="when_required",
    )
    session = boto3.session.Session()
    return session.client("s3", config=config)


def describe_target(bucket: str, key: str | None = None) -> str:
    return f"s3://{bucket}/{key}" if key else f"s3://{bucket}"


def translate_client_error(exc: Exception, *, bucket: str, key: str | None = None) -> ModelsyncError:
    """Map a botocore failure to a ModelsyncError whose message says what to do."""
    where = describe_target(bucket, key)
    if isinstance(exc, (bx.NoCredentialsError, bx.PartialCredentialsError)):
        return ModelsyncError(
            "no AWS credentials found: use a task role, or set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"
        )
    if isinstance(exc, bx.CredentialRetrievalError):
        return ModelsyncError(f"cannot get AWS credentials ({exc}): check the task role or the credential settings")
    if isinstance(exc, bx.EndpointConnectionError):
        return JobFailed(f"cannot reach the S3 endpoint for {where}: check network access and AWS_ENDPOINT_URL_S3")
    if isinstance(exc, bx.ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code == "NoSuchBucket" or (code == "404" and key is None):
            return ModelsyncError(f"bucket {bucket!r} does not exist: check --bucket / MODELSYNC_BUCKET")
        if code in ("AccessDenied", "403", "AllAccessDisabled") or status == 403:
            return ModelsyncError(
                f"access denied to {where}: grant this role s3:GetObject/s3:ListBucket (or s3:PutObject to publish) on the bucket"
            )
        if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken"):
            return ModelsyncError(f"the AWS credentials were rejected ({code}): refresh them or use the task role")
        if code in ("NoSuchKey", "404"):
            return ModelsyncError(f"{where} does not exist: check the model name, version and --prefix")
        message = error.get("Message") or code
        return JobFailed(f"S3 request for {where} failed: {code}: {message}; retry later or check the bucket")
    if isinstance(exc, bx.BotoCoreError):
        return JobFailed(f"S3 request for {where} failed: {exc}; retry later")
    raise exc


def is_not_found(exc: Exception) -> bool:
    if isinstance(exc, bx.ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        return code in ("NoSuchKey", "404", "NotFound")
    return False


def get_small_object(client, bucket: str, key: str, *, max_bytes: int, what: str) -> bytes | None:
    """Body of a small object, or None when the key does not exist (a missing bucket still raises).
    A ranged GET of max_bytes + 1 bytes: an object larger than max_bytes is refused in one line
    without being read, whatever its headers say."""
    where = describe_target(bucket, key)
    try:
        response = client.get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{max_bytes}")
        body = response["Body"].read(max_bytes + 1)
        response["Body"].close()
    except bx.ClientError as exc:
        if is_not_found(exc):
            return None
        if str(exc.response.get("Error", {}).get("Code", "")) == "InvalidRange":
            return b""  # S3 answers 416 to any range of an empty object
        raise translate_client_error(exc, bucket=bucket, key=key) from None
    except (bx.BotoCoreError,) as exc:
        raise translate_client_error(exc, bucket=bucket, key=key) from None
    if len(body) > max_bytes:
        raise JobFailed(f"{where} is more than {max_bytes} bytes, the most a {what} may have: "
                        f"not a modelsync {what}; republish the model")
    return body


def list_keys(client, bucket: str, prefix: str):
    """Yield every object summary under prefix."""
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            yield from page.get("Contents", [])
    except (bx.ClientError, bx.BotoCoreError) as exc:
        raise translate_client_error(exc, bucket=bucket, key=prefix) from None


def list_subprefixes(client, bucket: str, prefix: str) -> list[str]:
    """Immediate 'directories' under prefix (with trailing '/')."""
    found = []
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix, Delimiter="/"):
            found.extend(p["Prefix"] for p in page.get("CommonPrefixes", []))
    except (bx.ClientError, bx.BotoCoreError) as exc:
        raise translate_client_error(exc, bucket=bucket, key=prefix) from None
    return found
