"""Where the small objects of the bucket layout (LATEST, manifests, signatures, OMS bundles) are read from:
the bucket itself (S3Objects), or the S3 Files tree that mounts the bucket's prefix (bucket_store.BucketStore).

The readers and trust checks (manifest.py, signing.py, oms.py, freshness.py, trust.py) take one of these, so
a pull from S3 and a verify of the mounted tree run the very same checks. Keys come from the key functions
(manifest.latest_key, ...) with `prefix`; `where(key)` names an object in messages; `repository` is the
`s3://BUCKET/PREFIX` a LATEST statement must name (None: not checked)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from .errors import JobFailed


class Objects(Protocol):
    @property
    def prefix(self) -> str: ...

    @property
    def repository(self) -> str | None: ...

    def read(self, key: str, *, max_bytes: int, what: str) -> bytes | None:
        """The object's bytes, None when it does not exist; more than max_bytes: JobFailed (too_big)."""
        ...

    def where(self, key: str) -> str: ...


def too_big(where: str, max_bytes: int, what: str) -> JobFailed:
    return JobFailed(
        f"{where} is more than {max_bytes} bytes, the most a {what} may have: "
        f"not a modelsync {what}; republish the model"
    )


@dataclass(frozen=True)
class S3Objects:
    client: object
    bucket: str
    prefix: str

    @property
    def repository(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def read(self, key: str, *, max_bytes: int, what: str) -> bytes | None:
        from .s3 import get_small_object

        return get_small_object(self.client, self.bucket, key, max_bytes=max_bytes, what=what)

    def where(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"
