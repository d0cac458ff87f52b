"""Fixtures of the runtime tests (the shared S3 server fixtures live in tests/conftest.py)."""

from __future__ import annotations

import pytest

from modelsync.publish import publish_directory
from modelsync.s3 import make_client

from .helpers import PART, FaultProxy, make_keypair, write_model


@pytest.fixture
def client(s3_endpoint):
    return make_client()


@pytest.fixture
def publish(client, bucket, tmp_path):
    """publish(name, {path: bytes}) -> version, via the real publish code."""
    counter = iter(range(10_000))

    def _publish(name: str, files: dict[str, bytes], **kwargs) -> str:
        folder = write_model(tmp_path / f"src-{name}-{next(counter)}", files)
        return publish_directory(client, bucket, name, folder, part_size=PART, **kwargs).version

    return _publish


@pytest.fixture
def pulled_then_published(client, bucket, publish, tmp_path):
    """make(v1, v2) -> (dest, version 1, version 2): v1 published and pulled into tmp_path/d, then
    v2 published (a pull of the model's LATEST now has work to do)."""
    from modelsync.pull import pull

    def make(v1: dict[str, bytes], v2: dict[str, bytes]):
        first = publish("m", v1)
        dest = tmp_path / "d"
        pull(client, bucket, dest)
        return dest, first, publish("m", v2)

    return make


@pytest.fixture
def proxy(s3_endpoint):
    with FaultProxy(s3_endpoint) as running:
        yield running


@pytest.fixture
def proxy_env(proxy):
    """Environment for a subprocess whose S3 traffic goes through the fault proxy."""
    return {"AWS_ENDPOINT_URL_S3": proxy.url, "MODELSYNC_PART_SIZE_MIB": "1"}


@pytest.fixture
def proxy_client(proxy, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", proxy.url)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "3")
    return make_client()


@pytest.fixture(scope="session")
def pem_keys(tmp_path_factory) -> tuple[str, str]:
    """(private, public) PEM files of one EC P-256 key for the session."""
    return make_keypair(tmp_path_factory.mktemp("pem-keys"))
