"""Fixtures for the seed runner and operator command tests (helpers live in seed_fakes.py)."""

from __future__ import annotations

import sys
from pathlib import Path
from types import ModuleType

import pytest

HERE = Path(__file__).resolve().parent
for path in (HERE.parents[1], HERE):  # `tools` at the repository root; seed_fakes beside us
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from seed_fakes import RUNNER_ENV, load_handler  # noqa: E402


@pytest.fixture(autouse=True)
def offline_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No real credentials, config or instance metadata can leak into a test."""
    for name in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                 "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                 "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN", "AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    # Anything that slipped past a Stubber would go to a closed local port, never the internet.
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    return load_handler(monkeypatch, RUNNER_ENV)


@pytest.fixture
def s3(s3_endpoint, monkeypatch: pytest.MonkeyPatch):
    """A modelsync S3 client on the local S3 server (offline_aws removed the session's test credentials)."""
    from modelsync.s3 import make_client

    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_endpoint)
    return make_client()
