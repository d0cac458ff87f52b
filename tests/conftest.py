"""Shared fixtures: a real S3-compatible HTTP server (moto) on 127.0.0.1 for the whole session.

Every S3 call in the tests, from this process or from `modelsync` subprocesses, goes over HTTP
to this server through boto3's standard AWS_ENDPOINT_URL_S3, exactly as in `make local`.
"""

from __future__ import annotations

import logging
import uuid

import boto3
import pytest
from botocore.config import Config

FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
# Variables that could route the tests to a real account or a user's config.
_UNSET = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL")


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory):
    """URL of a ThreadedMotoServer on 127.0.0.1 (random free port); sets fake credentials
    and AWS_ENDPOINT_URL_S3 in os.environ for the session (subprocesses inherit them)."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one log line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"

    empty_config = tmp_path_factory.mktemp("aws-config") / "none"
    with pytest.MonkeyPatch.context() as mp:
        for name in _UNSET:
            mp.delenv(name, raising=False)
        for name, value in FAKE_CREDENTIALS.items():
            mp.setenv(name, value)
        mp.setenv("AWS_ENDPOINT_URL_S3", url)
        # Never read ~/.aws of whoever runs the tests.
        mp.setenv("AWS_CONFIG_FILE", str(empty_config))
        mp.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty_config))
        mp.setenv("AWS_EC2_METADATA_DISABLED", "true")
        yield url
    server.stop()


@pytest.fixture
def s3_client(s3_endpoint):
    """A plain boto3 S3 client pointed at the test server."""
    return boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 2, "mode": "standard"}),
    )


@pytest.fixture
def bucket(s3_client):
    """A freshly created, empty bucket with a unique name."""
    name = f"test-models-{uuid.uuid4().hex[:12]}"
    s3_client.create_bucket(Bucket=name)
    return name
