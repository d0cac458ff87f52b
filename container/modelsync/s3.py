"""The S3 client and the translation of S3 failures into one-line errors.

boto3 and botocore are imported only when a request is made: importing them costs ~0.2-0.3 s, more
than a whole warm pull of a pinned version (which makes no request) needs."""

from __future__ import annotations

import contextlib
import gc
import os
import threading

from .errors import JobFailed, ModelsyncError

DEFAULT_MAX_ATTEMPTS = 5
DEFAULT_RETRY_MODE = "adaptive"  # client-side rate limiting on throttling: many tasks may start at once
RETRY_MODES = ("legacy", "standard", "adaptive")


class LazyClient:
    """An S3 client created (and boto3 imported) on first use, once: many download threads reach
    their first request at the same moment, and each boto3 client costs ~0.3 s of CPU and ~15 MiB."""

    def __init__(self, **kwargs):
        self._kwargs, self._client, self._lock = kwargs, None, threading.Lock()

    def __getattr__(self, name):
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = make_client(**self._kwargs)
        return getattr(self._client, name)


def retry_settings() -> tuple[str, int]:
    """AWS_RETRY_MODE (default adaptive) and AWS_MAX_ATTEMPTS (default 5), checked: one line on a bad value."""
    from .config import env, env_int

    mode = (env("AWS_RETRY_MODE") or DEFAULT_RETRY_MODE).lower()
    if mode not in RETRY_MODES:
        raise ModelsyncError(
            f"AWS_RETRY_MODE={mode!r} is not a retry mode: use {', '.join(RETRY_MODES)} (default {DEFAULT_RETRY_MODE})"
        )
    return mode, env_int("AWS_MAX_ATTEMPTS", DEFAULT_MAX_ATTEMPTS)


@contextlib.contextmanager
def globals_applied(*, endpoint_url: str | None, region: str | None, profile: str | None):
    """The global --endpoint-url, --region and --profile, set as the variables boto3 (and quick_get)
    read, so every client of this run and every path to S3 sees the same settings; restored on exit
    (main() may run inside another program, e.g. the tests)."""
    wanted = {}
    if endpoint_url:
        wanted["AWS_ENDPOINT_URL_S3"] = endpoint_url  # S3 only: a KMS trust key keeps its endpoint
    if region:  # botocore itself reads only AWS_DEFAULT_REGION
        wanted["AWS_REGION"] = wanted["AWS_DEFAULT_REGION"] = region
    if profile:
        wanted["AWS_PROFILE"] = profile
    saved = {name: os.environ.get(name) for name in wanted}
    os.environ.update(wanted)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def make_client(*, max_pool_connections: int = 32):
    """A boto3 S3 client: standard credential chain, AWS_ENDPOINT_URL(_S3) honoured by boto3 itself,
    AWS_RETRY_MODE (default adaptive: throttling and 5xx backed off client-side), bounded attempts."""
    import boto3
    import botocore.exceptions as bx
    from botocore.config import Config

    mode, attempts = retry_settings()
    config = Config(
        max_pool_connections=max_pool_connections,
        retries={"mode": mode, "total_max_attempts": attempts},
        connect_timeout=10,
        read_timeout=60,
        tcp_keepalive=True,
        signature_version="s3v4",  # also for presigned URLs (modelsync url)
        # We verify every downloaded byte with our own sha256; a second CRC pass only costs CPU.
        response_checksum_validation="when_required",
    )
    try:
        session = boto3.session.Session()
        client = session.client("s3", config=config)
    except bx.ProfileNotFound as exc:
        raise ModelsyncError(f"{exc}: check --profile / AWS_PROFILE and your AWS config file") from exc
    # boto3's service model is hundreds of thousands of objects that live as long as the process:
    # keep them out of the garbage collector's passes, which otherwise cost ~5 % of a pull's CPU.
    gc.freeze()
    return client


def describe_target(bucket: str, key: str | None = None) -> str:
    return f"s3://{bucket}/{key}" if key else f"s3://{bucket}"


def translate_client_error(exc: Exception, *, bucket: str, key: str | None = None) -> ModelsyncError:
    """Map a botocore failure to a ModelsyncError whose message says what to do."""
    import botocore.exceptions as bx

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
                f"access denied to {where}: grant this role s3:GetObject/s3:ListBucket "
                "(or s3:PutObject to publish) on the bucket"
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
    import botocore.exceptions as bx

    if isinstance(exc, bx.ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        return code in ("NoSuchKey", "404", "NotFound")
    return False


def get_small_object(client, bucket: str, key: str, *, max_bytes: int, what: str) -> bytes | None:
    """Body of a small object, or None when the key does not exist (a missing bucket still raises).
    A ranged GET of max_bytes + 1 bytes: an object larger than max_bytes is refused in one line
    without being read, whatever its headers say."""
    where = describe_target(bucket, key)
    body = None
    if isinstance(client, LazyClient) and client._client is None:
        from . import quick_get

        body = quick_get.get(bucket, key, max_bytes=max_bytes)  # no boto3 import for a warm pull's request
    if body is None:
        body = _get_small_object_botocore(client, bucket, key, max_bytes)
        if body is None:
            return None
    if len(body) > max_bytes:
        from .objects import too_big

        raise too_big(where, max_bytes, what)
    return body


def _get_small_object_botocore(client, bucket: str, key: str, max_bytes: int) -> bytes | None:
    import botocore.exceptions as bx

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
    except bx.BotoCoreError as exc:
        raise translate_client_error(exc, bucket=bucket, key=key) from None
    return body


def object_sha256(client, bucket: str, key: str, *, on_chunk=None) -> tuple[str, int]:
    """(sha256, size) of an object's bytes as S3 serves them, streamed (sign and publish re-hash what is there)."""
    import hashlib

    import botocore.exceptions as bx

    from . import stop

    digest, size = hashlib.sha256(), 0
    try:
        body = client.get_object(Bucket=bucket, Key=key)["Body"]
        for chunk in body.iter_chunks(1024 * 1024):
            stop.check()
            digest.update(chunk)
            size += len(chunk)
            if on_chunk is not None:
                on_chunk(len(chunk))
        body.close()
    except (bx.ClientError, bx.BotoCoreError) as exc:
        raise translate_client_error(exc, bucket=bucket, key=key) from None
    return digest.hexdigest(), size


def list_keys(client, bucket: str, prefix: str):
    """Yield every object summary under prefix."""
    import botocore.exceptions as bx

    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            yield from page.get("Contents", [])
    except (bx.ClientError, bx.BotoCoreError) as exc:
        raise translate_client_error(exc, bucket=bucket, key=prefix) from None


def list_subprefixes(client, bucket: str, prefix: str) -> list[str]:
    """Immediate 'directories' under prefix (with trailing '/')."""
    import botocore.exceptions as bx

    found: list[str] = []
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix, Delimiter="/"):
            found.extend(p["Prefix"] for p in page.get("CommonPrefixes", []))
    except (bx.ClientError, bx.BotoCoreError) as exc:
        raise translate_client_error(exc, bucket=bucket, key=prefix) from None
    return found
