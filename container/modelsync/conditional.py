"""Writes of a version's immutable objects (`files/*` and `manifest.json`) with S3's conditional write
`If-None-Match: *` (docs/contracts.md, "Bucket layout").

S3 then refuses to replace an existing object (412 PreconditionFailed), so a version's bytes never change once
written, also under a reader of the live S3 Files mount; the bucket policy denies PutObject on those keys
without the header, so every writer of them must send it. A 412 means "already there": the caller checks
that what is there is what it meant to write. 409 ConditionalRequestConflict (another write of the key in
flight) is retried. LATEST, the signatures, model.sig and STAGED are rewritten legitimately: not here.
"""

from __future__ import annotations

import contextlib
import time
import uuid

from . import backoff

CREATE_ONLY = "*"
PRECONDITION_FAILED = "PreconditionFailed"
CONFLICT = "ConditionalRequestConflict"
CONFLICT_ATTEMPTS = 5
_OPERATIONS = ("PutObject", "CompleteMultipartUpload")  # the requests that create an object from an upload


def error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def conflict_pause(attempt: int) -> None:
    time.sleep(backoff.delay(attempt, first=0.2, cap=2.0))


@contextlib.contextmanager
def create_only(client, bucket: str, key_prefix: str):
    """While open, every PutObject and CompleteMultipartUpload this client makes for a key under key_prefix in
    bucket sends If-None-Match: * (s3transfer's uploads take no such argument, so it is added to the request)."""

    def add(params, **_kwargs) -> None:
        if params.get("Bucket") == bucket and str(params.get("Key", "")).startswith(key_prefix):
            params["IfNoneMatch"] = CREATE_ONLY

    unique = f"modelsync-create-only-{uuid.uuid4().hex}"
    events = client.meta.events
    for operation in _OPERATIONS:
        events.register(f"before-parameter-build.s3.{operation}", add, unique_id=f"{unique}-{operation}")
    try:
        yield
    finally:
        for operation in _OPERATIONS:
            events.unregister(f"before-parameter-build.s3.{operation}", unique_id=f"{unique}-{operation}")


def put_new(client, bucket: str, key: str, body: bytes, **kwargs) -> bool:
    """PutObject that never replaces: True when written, False when the object was already there (412)."""
    import botocore.exceptions as bx

    for attempt in range(1, CONFLICT_ATTEMPTS + 1):
        try:
            client.put_object(Bucket=bucket, Key=key, Body=body, IfNoneMatch=CREATE_ONLY, **kwargs)
            return True
        except bx.ClientError as exc:
            code = error_code(exc)
            if code == PRECONDITION_FAILED:
                return False
            if code != CONFLICT or attempt == CONFLICT_ATTEMPTS:
                raise
            conflict_pause(attempt)
    raise AssertionError("unreachable")
