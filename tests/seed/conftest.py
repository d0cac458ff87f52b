"""Fixtures of the seeding tests: a local Zenodo (session-wide server, reset for every test)."""

from __future__ import annotations

import pytest

from tests.runtime.helpers import make_keypair
from tools.fake_zenodo import FakeZenodo


@pytest.fixture(scope="session")
def zenodo_server():
    server = FakeZenodo()
    yield server
    server.close()


@pytest.fixture
def zenodo(zenodo_server):
    zenodo_server.reset()
    yield zenodo_server
    zenodo_server.reset()


class RecordedSleep:
    """Stands in for time.sleep: records the waits the retry logic asks for, spends none."""

    def __init__(self):
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
def sleeps():
    return RecordedSleep()


@pytest.fixture(scope="session")
def seed_keys(tmp_path_factory) -> tuple[str, str]:
    """(private, public) PEM key files: the signing key of a seed that signs in one step (as `make local`)."""
    return make_keypair(tmp_path_factory.mktemp("seed-keys"))
