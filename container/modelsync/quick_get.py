"""One small S3 GET without botocore, for the warm path.

A warm pull needs one request (LATEST); importing boto3 and building a client costs ~0.3 s of CPU,
several times the rest of the pull. Where the environment is plain, this module signs that GET itself
(AWS Signature Version 4, http.client; TLS checked against the CA bundle botocore would use) and
returns the body. It answers None (the caller then uses botocore, which also produces every error
message) whenever anything is unusual: credentials that are neither environment variables nor the ECS
task role, a profile or shared credentials file, a proxy, FIPS or dual-stack endpoints, a custom
endpoint that is not an IP address or localhost, a bucket name that is not DNS-safe, or any answer
but 200 or 206 (an empty object's 416 included). So it can make a warm pull faster, never different.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import http.client
import importlib.util
import ipaddress
import json
import os
import re
import ssl
import urllib.parse

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
ECS_HOST = "169.254.170.2"
_DNS_BUCKET = re.compile(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]")
_UNSUPPORTED_ENV = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_USE_FIPS_ENDPOINT",
    "AWS_USE_DUALSTACK_ENDPOINT",
    "AWS_S3_US_EAST_1_REGIONAL_ENDPOINT",
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
)


def get(bucket: str, key: str, *, max_bytes: int, timeout: float = 5.0) -> bytes | None:
    """The object's first max_bytes + 1 bytes (a ranged GET, as botocore's caller asks), or None
    when botocore should do this request."""
    try:
        target = _target(bucket, key)
        credentials = _credentials(timeout) if target else None
        if not credentials:
            return None
        scheme, host, port, path, region = target
        headers = sign("GET", host if port is None else f"{host}:{port}", path, region, credentials, _now())
        connection: http.client.HTTPConnection
        if scheme == "https":
            connection = http.client.HTTPSConnection(host, port, timeout=timeout, context=_tls_context())
        else:
            connection = http.client.HTTPConnection(host, port, timeout=timeout)
        try:
            connection.request("GET", path, headers={**headers, "Range": f"bytes=0-{max_bytes}"})
            response = connection.getresponse()
            body = response.read(max_bytes + 1)
        finally:
            connection.close()
        return body if response.status in (200, 206) else None
    except (OSError, http.client.HTTPException, ValueError):
        return None


def _tls_context() -> ssl.SSLContext:
    """The CA bundle botocore would use: AWS_CA_BUNDLE, else certifi's, else the one botocore ships."""
    cafile = os.environ.get("AWS_CA_BUNDLE")
    if not cafile:
        try:
            import certifi

            cafile = certifi.where()
        except ImportError:
            spec = importlib.util.find_spec("botocore")  # locates the package without importing it
            cafile = os.path.join(os.path.dirname(spec.origin), "cacert.pem") if spec and spec.origin else None
    return ssl.create_default_context(cafile=cafile)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _target(bucket: str, key: str):
    """(scheme, host, port, path, region) of the object, or None when botocore must resolve it."""
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if not region or any(os.environ.get(name) for name in _UNSUPPORTED_ENV):
        return None
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    quoted = urllib.parse.quote(key, safe="/~")
    if endpoint:  # path style, as botocore uses for an endpoint given as an address
        parts = urllib.parse.urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or parts.path.strip("/") or not parts.hostname:
            return None
        if parts.hostname != "localhost":
            try:
                ipaddress.ip_address(parts.hostname)
            except ValueError:
                return None
        return parts.scheme, parts.hostname, parts.port, f"/{bucket}/{quoted}", region
    if not _DNS_BUCKET.fullmatch(bucket) or not re.fullmatch(r"[a-z]{2}-[a-z]+-\d", region) or region.startswith("cn-"):
        return None
    return "https", f"{bucket}.s3.{region}.amazonaws.com", None, f"/{quoted}", region


def _credentials(timeout: float) -> tuple[str, str, str | None] | None:
    """(access key, secret key, session token) from the environment or the ECS task role, the first
    two places botocore looks, or None."""
    access, secret = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
    if access and secret:
        return access, secret, os.environ.get("AWS_SESSION_TOKEN") or None
    if access or secret:
        return None
    # botocore reads shared files before the container role: only go on where there are none.
    home = os.path.expanduser("~")
    for variable, default in (
        ("AWS_SHARED_CREDENTIALS_FILE", os.path.join(home, ".aws", "credentials")),
        ("AWS_CONFIG_FILE", os.path.join(home, ".aws", "config")),
    ):
        if os.path.exists(os.environ.get(variable) or default):
            return None
    relative = os.environ.get("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
    if not relative or os.environ.get("AWS_CONTAINER_CREDENTIALS_FULL_URI"):
        return None
    connection = http.client.HTTPConnection(ECS_HOST, 80, timeout=timeout)
    try:
        connection.request("GET", relative)
        response = connection.getresponse()
        data = json.loads(response.read()) if response.status == 200 else {}
    finally:
        connection.close()
    if not data.get("AccessKeyId") or not data.get("SecretAccessKey"):
        return None
    return data["AccessKeyId"], data["SecretAccessKey"], data.get("Token")


def sign(method: str, host: str, path: str, region: str, credentials, when: datetime.datetime) -> dict:
    """Headers of a SigV4-signed S3 request without a body or query string."""
    access, secret, token = credentials
    stamp = when.strftime("%Y%m%dT%H%M%SZ")
    day = stamp[:8]
    headers = {"host": host, "x-amz-content-sha256": EMPTY_SHA256, "x-amz-date": stamp}
    if token:
        headers["x-amz-security-token"] = token
    names = sorted(headers)
    canonical = "\n".join([method, path, "", *(f"{n}:{headers[n]}" for n in names), "", ";".join(names), EMPTY_SHA256])
    scope = f"{day}/{region}/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    signing_key = f"AWS4{secret}".encode()
    for part in (day, region, "s3", "aws4_request"):
        signing_key = hmac.new(signing_key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(signing_key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["Authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={access}/{scope}, SignedHeaders={';'.join(names)}, Signature={signature}"
    )
    return headers
