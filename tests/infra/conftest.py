"""Module-scoped builds of the stack configurations (each App synthesizes once per test module)."""

from __future__ import annotations

import pytest

from .helpers import CONFIGS, DEPLOY_ACCESS, Built


@pytest.fixture(scope="module")
def s3_built() -> Built:
    return Built(CONFIGS["s3"])


@pytest.fixture(scope="module")
def efs_built() -> Built:
    return Built(CONFIGS["efs"])


@pytest.fixture(scope="module")
def prod_built() -> Built:
    return Built(CONFIGS["prod-ecr"])


@pytest.fixture(scope="module")
def two_apps_built() -> Built:
    return Built(CONFIGS["two-apps"])


@pytest.fixture(scope="module")
def s3files_built() -> Built:
    return Built(CONFIGS["s3files"])


@pytest.fixture(scope="module")
def access_built() -> Built:
    return Built(DEPLOY_ACCESS["deploy-access"])


@pytest.fixture(scope="module")
def access_reuse_built() -> Built:
    return Built(DEPLOY_ACCESS["deploy-access-reuse"])
