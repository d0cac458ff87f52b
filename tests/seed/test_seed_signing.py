"""The seed signs what it publishes, and its "unchanged" decision relies only on signed content."""

from __future__ import annotations

import json

import pytest

from modelsync.manifest import latest_key, manifest_key, read_latest
from modelsync.publish import publish_directory
from modelsync.seed.fetch import HttpFetcher, RetryPolicy
from modelsync.seed.run import Seeder
from modelsync.seed.zenodo import ZenodoClient
from modelsync.keys import load_signer, load_verifier
from modelsync.trust import published_problem
from modelsync.verify import verify
from tests.seed.fake_paddle import FakePaddleOCR
from tests.seed.test_seed_flow import RECORD, write_catalog, zenodo_entry
from tools.fake_zenodo import make_zip

L2 = "PP_L2_material_agnostic"


@pytest.fixture
def key_files(seed_keys):
    return seed_keys


@pytest.fixture
def signed_seeder(s3_client, bucket, tmp_path, sleeps, key_files):
    def make(base_url: str) -> Seeder:
        fetcher = HttpFetcher(RetryPolicy(attempts=3, backoff_seconds=0.1, timeout_seconds=5), sleep=sleeps)
        return Seeder(s3_client, bucket, prefix="models/", workdir=tmp_path / "work",
                      zenodo=ZenodoClient(base_url, fetcher=fetcher), pipeline_factory=FakePaddleOCR(),
                      concurrency=4, signer=load_signer(key_files[0]))
    return make


@pytest.fixture
def seeded(zenodo, signed_seeder, tmp_path):
    zenodo.add(RECORD, f"{L2}.zip", make_zip({"model.joblib": b"catalog"}))
    catalog = write_catalog(tmp_path, zenodo_entry(L2, "l2"))
    first = signed_seeder(zenodo.url).run(catalog.select(), efs_root=str(tmp_path / "efs"))
    assert first.models[0].status == "published", first.models[0].error
    return catalog, first.models[0].version


def test_seed_signs_and_a_second_run_is_unchanged(zenodo, signed_seeder, seeded, s3_client, bucket, tmp_path,
                                                  key_files):
    catalog, version = seeded
    latest = read_latest(s3_client, bucket, L2)
    assert published_problem(s3_client, bucket, "models/", latest, load_verifier(key_files[1]), latest=True) is None
    # The EFS mirror kept each signature: verify --trust-key passes there (the efs-mode init container).
    states = verify(tmp_path / "efs", trust=load_verifier(key_files[1]))
    assert [s.problems for s in states] == [[]]
    second = signed_seeder(zenodo.url).run(catalog.select())
    assert [m.status for m in second.models] == ["unchanged"]


def test_an_unsigned_manifest_copying_the_source_does_not_make_the_seed_unchanged(
        zenodo, signed_seeder, seeded, s3_client, bucket, tmp_path, key_files):
    """Reproduction: someone with write access publishes other bytes, unsigned, under a manifest that
    copies the catalog's source. Without the fix the next seed compared only the source: "unchanged"."""
    catalog, version = seeded
    source = read_latest(s3_client, bucket, L2).source
    forged = tmp_path / "forged"
    forged.mkdir()
    (forged / "model.joblib").write_bytes(b"not what the catalog says")
    forged_version = publish_directory(s3_client, bucket, L2, forged, prefix="models/", source=source).version
    assert read_latest(s3_client, bucket, L2).source == source

    second = signed_seeder(zenodo.url).run(catalog.select())

    assert second.models[0].status == "published" and second.models[0].version == version != forged_version
    latest = read_latest(s3_client, bucket, L2)
    assert latest.version == version
    assert published_problem(s3_client, bucket, "models/", latest, load_verifier(key_files[1]), latest=True) is None


def test_a_rewritten_manifest_of_the_same_version_is_checked_and_signed_never_replaced(
        zenodo, signed_seeder, seeded, s3_client, bucket, key_files):
    """The catalog's own version, its manifest edited in place (signature no longer matches): manifests are
    written once (If-None-Match), so the one there, listing the same files, is signed after its objects were
    read back; one that names another source is refused, not signed."""
    catalog, version = seeded
    key = manifest_key("models/", L2, version)
    data = json.loads(s3_client.get_object(Bucket=bucket, Key=key)["Body"].read())
    data["created"] = "2020-01-01T00:00:00.000000Z"
    s3_client.put_object(Bucket=bucket, Key=key, Body=json.dumps(data).encode())

    second = signed_seeder(zenodo.url).run(catalog.select())

    assert second.models[0].status == "published" and second.models[0].version == version
    latest = read_latest(s3_client, bucket, L2)
    assert latest.created == "2020-01-01T00:00:00.000000Z"
    assert published_problem(s3_client, bucket, "models/", latest, load_verifier(key_files[1]), latest=True) is None

    data["source"] = {"type": "https", "url": "https://elsewhere.example/model.zip"}
    s3_client.put_object(Bucket=bucket, Key=key, Body=json.dumps(data).encode())
    third = signed_seeder(zenodo.url).run(catalog.select())
    assert third.models[0].status == "failed" and "names another source" in third.models[0].error
    assert s3_client.get_object(Bucket=bucket, Key=key)["Body"].read() == json.dumps(data).encode()


def test_an_unsigned_latest_is_signed_again(zenodo, signed_seeder, seeded, s3_client, bucket):
    catalog, version = seeded
    s3_client.put_object(Bucket=bucket, Key=latest_key("models/", L2), Body=json.dumps({"version": version}).encode())

    second = signed_seeder(zenodo.url).run(catalog.select())

    assert second.models[0].status == "published" and second.models[0].uploaded_bytes == 0
    assert "signature" in json.loads(s3_client.get_object(Bucket=bucket, Key=latest_key("models/", L2))["Body"].read())
