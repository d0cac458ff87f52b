"""The seed flow end to end: the local fake Zenodo -> safe extraction -> publish to the moto S3
server over HTTP -> pull into a temporary EFS root; then a second run that transfers nothing."""

from __future__ import annotations

import hashlib
import json
import socket
from pathlib import Path

import pytest

from modelsync.manifest import read_latest
from modelsync.publish import publish_directory
from modelsync.pull import pull as real_pull
from modelsync.seed.catalog import load_catalog
from modelsync.seed.fetch import HttpFetcher, RetryPolicy
from modelsync.keys import load_signer
from modelsync.mirror import MIRROR_ROUNDS
from modelsync.seed.run import Seeder, format_report
from modelsync.seed.zenodo import ZenodoClient
from modelsync.store import LocalStore
from tests.seed.fake_paddle import PADDLE_MODELS, FakePaddleOCR
from tools.fake_zenodo import FAMILY_FILES, make_zip, model_zip

RECORD = "15765516"
FAMILIES = """\
families:
  m2f: {required_files: [config.yaml, [model.pth, model_final.pth]]}
  amm: {required_files: [loc.npy, cov.npy, model.pth, meta_data.json]}
  gmm: {required_files: [contrast_dict.json]}
  l2: {required_files: [model.joblib]}
models:
"""
PADDLE_ENTRY = """\
  - name: paddleocr
    enabled: true
    approx_size_mb: 1
    source:
      type: paddleocr
      paddleocr_version: "3.7.0"
      lang: es
      options: {use_doc_orientation_classify: true, use_doc_unwarping: true, use_textline_orientation: true}
      expected_models: [%s]
""" % ", ".join(PADDLE_MODELS)


def zenodo_entry(name: str, family: str, *, approx_mb: int = 1, sha256: str | None = None) -> str:
    pin = f", sha256: '{sha256}'" if sha256 else ""
    return (f"  - name: {name}\n    enabled: true\n    approx_size_mb: {approx_mb}\n    family: {family}\n"
            f"    source: {{type: zenodo, record: {RECORD}, file: {name}.zip{pin}}}\n")


def write_catalog(tmp_path, *entries: str):
    path = tmp_path / "catalog.yaml"
    path.write_text(FAMILIES + "".join(entries))
    return load_catalog(path)


@pytest.fixture
def make_seeder(s3_client, bucket, tmp_path, sleeps, seed_keys):
    """A seed that holds the signing key, so it publishes and mirrors in one step (as `make local`)."""
    def make(base_url: str, paddle: FakePaddleOCR | None = None) -> Seeder:
        fetcher = HttpFetcher(RetryPolicy(attempts=3, backoff_seconds=0.1, timeout_seconds=5), sleep=sleeps)
        return Seeder(s3_client, bucket, prefix="models/", workdir=tmp_path / "work",
                      zenodo=ZenodoClient(base_url, fetcher=fetcher), pipeline_factory=paddle or FakePaddleOCR(),
                      concurrency=4, signer=load_signer(seed_keys[0]))
    return make


def efs_file(efs, name, path):
    return (efs / name / path).read_bytes()


def test_seed_end_to_end_then_a_second_run_transfers_nothing(zenodo, make_seeder, s3_client, bucket, tmp_path):
    zenodo.add(RECORD, "SEG_M2F_WS2.zip", model_zip("m2f", "SEG_M2F_WS2"))  # with a top-level folder
    zenodo.add(RECORD, "CLS_AMM_WS2.zip", make_zip(FAMILY_FILES["amm"]))  # without one
    zenodo.add(RECORD, "PP_L2_material_agnostic.zip", model_zip("l2", "PP_L2_material_agnostic"))
    zenodo.add(RECORD, "SEG_M2F_MoSe2.zip", model_zip("m2f", "SEG_M2F_MoSe2"))  # in the record, not selected
    catalog = write_catalog(tmp_path, zenodo_entry("SEG_M2F_WS2", "m2f"), zenodo_entry("CLS_AMM_WS2", "amm"),
                            zenodo_entry("PP_L2_material_agnostic", "l2"), PADDLE_ENTRY)
    efs = tmp_path / "efs"
    paddle = FakePaddleOCR()

    first = make_seeder(zenodo.url, paddle).run(catalog.select(), efs_root=str(efs))

    assert [(m.name, m.status) for m in first.models] == [
        ("SEG_M2F_WS2", "published"), ("CLS_AMM_WS2", "published"), ("PP_L2_material_agnostic", "published"),
        ("paddleocr", "published")]
    assert not first.failed and first.mirror.ok
    assert len(zenodo.downloads()) == 3 and not zenodo.downloads("MoSe2")
    # The bucket: the model folder's files at the top, the Zenodo source recorded in the manifest.
    seg = read_latest(s3_client, bucket, "SEG_M2F_WS2")
    data = model_zip("m2f", "SEG_M2F_WS2")
    assert sorted(f.path for f in seg.files) == ["config.yaml", "model_final.pth"]
    assert seg.source == {"type": "zenodo", "record": RECORD, "file": "SEG_M2F_WS2.zip",
                          "md5": hashlib.md5(data).hexdigest(), "size": len(data),
                          "sha256": hashlib.sha256(data).hexdigest()}
    assert first.models[0].version == seg.version and first.models[0].downloaded_bytes == len(data)
    paddle_manifest = read_latest(s3_client, bucket, "paddleocr")
    assert {f.path.split("/")[1] for f in paddle_manifest.files if f.path.startswith("official_models/")} == set(PADDLE_MODELS)
    assert paddle_manifest.source["paddleocr_version"] == "3.7.0"
    # The EFS mirror: the stable paths the app opens.
    assert efs_file(efs, "SEG_M2F_WS2", "config.yaml") == FAMILY_FILES["m2f"]["config.yaml"]
    assert efs_file(efs, "CLS_AMM_WS2", "meta_data.json") == FAMILY_FILES["amm"]["meta_data.json"]
    assert efs_file(efs, "paddleocr", "official_models/UVDoc/inference.yml").startswith(b"Global:")
    assert first.mirror.files == sum(len(read_latest(s3_client, bucket, m.name).files) for m in first.models)

    downloads_before, puts_before = len(zenodo.downloads()), _object_count(s3_client, bucket)
    second = make_seeder(zenodo.url, paddle).run(catalog.select(), efs_root=str(efs))

    assert [m.status for m in second.models] == ["unchanged"] * 4
    assert [m.version for m in second.models] == [m.version for m in first.models]
    assert len(zenodo.downloads()) == downloads_before  # only the records API was asked
    assert len(paddle.calls) == 1  # the pipeline was not built again
    assert sum(m.uploaded_bytes + m.downloaded_bytes for m in second.models) == 0
    assert _object_count(s3_client, bucket) == puts_before
    assert (second.mirror.files, second.mirror.bytes) == (0, 0) and second.mirror.skipped_files == first.mirror.files

    table = format_report(second)
    assert table.splitlines()[0].split() == ["MODEL", "STATUS", "VERSION", "SIZE", "DOWNLOADED", "UPLOADED", "SECONDS"]
    assert "seed: 0 published, 4 unchanged, 0 failed" in table


def test_failures_are_reported_and_every_other_model_is_still_published(zenodo, make_seeder, s3_client, bucket,
                                                                         tmp_path, sleeps):
    zenodo.add(RECORD, "CLS_GMM_WS2.zip", model_zip("gmm", "CLS_GMM_WS2"))  # fine
    zenodo.add(RECORD, "CLS_GMM_MoSe2.zip", model_zip("gmm", "CLS_GMM_MoSe2"))  # 429 first, then fine
    zenodo.fail(r"CLS_GMM_MoSe2.zip/content$", 429, Retry_After="3")
    zenodo.add(RECORD, "CLS_GMM_WSe2.zip", model_zip("gmm", "CLS_GMM_WSe2"))
    zenodo.wrong_md5.add("CLS_GMM_WSe2.zip")  # md5 mismatch
    zenodo.add(RECORD, "CLS_GMM_hBN_Thin.zip", make_zip({"CLS_GMM_hBN_Thin/contrast_dict.json": b"{}",
                                                         "../../etc/cron.d/x": b"evil"}))  # escapes the tree
    zenodo.add(RECORD, "CLS_AMM_WSe2.zip", make_zip({k: v for k, v in FAMILY_FILES["amm"].items() if k != "cov.npy"}))
    zenodo.add(RECORD, "CLS_GMM_WSe2L.zip", b"x")
    zenodo.missing_content.add("CLS_GMM_WSe2L.zip")  # 404 on download
    names = ["CLS_GMM_WS2", "CLS_GMM_MoSe2", "CLS_GMM_WSe2", "CLS_GMM_hBN_Thin", "CLS_AMM_WSe2", "CLS_GMM_WSe2L",
             "CLS_GMM_GrapheneL"]  # the last is not in the record at all
    catalog = write_catalog(tmp_path, *(zenodo_entry(n, "amm" if "AMM" in n else "gmm") for n in names))
    efs = tmp_path / "efs"

    report = make_seeder(zenodo.url).run(catalog.select(), efs_root=str(efs))

    status = {m.name: m.status for m in report.models}
    errors = {m.name: m.error for m in report.models}
    assert status == {"CLS_GMM_WS2": "published", "CLS_GMM_MoSe2": "published", "CLS_GMM_WSe2": "failed",
                      "CLS_GMM_hBN_Thin": "failed", "CLS_AMM_WSe2": "failed", "CLS_GMM_WSe2L": "failed",
                      "CLS_GMM_GrapheneL": "failed"}
    assert report.failed and report.mirror.ok
    assert 3.0 in sleeps.waits  # the 429's Retry-After was honoured
    assert "md5 mismatch" in errors["CLS_GMM_WSe2"]
    assert errors["CLS_GMM_hBN_Thin"].startswith("CLS_GMM_hBN_Thin.zip: entry '../../etc/cron.d/x' escapes the archive tree with '..'")
    assert "missing cov.npy" in errors["CLS_AMM_WSe2"]
    assert "HTTP 404" in errors["CLS_GMM_WSe2L"]
    assert "has no file 'CLS_GMM_GrapheneL.zip'" in errors["CLS_GMM_GrapheneL"]
    for name, state in status.items():
        published = read_latest(s3_client, bucket, name)
        assert (published is not None) == (state == "published"), name
        assert (efs / name / "contrast_dict.json").is_file() == (state == "published"), name
    assert list((tmp_path / "work").iterdir()) == []  # scratch space cleaned, nothing escaped into it
    assert not (tmp_path / "etc").exists()

    table = format_report(report)
    assert "seed: 2 published, 0 unchanged, 5 failed" in table
    assert f"FAILED CLS_GMM_WSe2: {errors['CLS_GMM_WSe2']}" in table.splitlines()


def test_zenodo_unreachable_fails_its_models_but_paddleocr_is_published(make_seeder, s3_client, bucket, tmp_path,
                                                                        sleeps):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    catalog = write_catalog(tmp_path, zenodo_entry("CLS_GMM_WS2", "gmm"), zenodo_entry("CLS_GMM_MoSe2", "gmm"),
                            PADDLE_ENTRY)

    report = make_seeder(closed).run(catalog.select())

    assert [(m.name, m.status) for m in report.models] == [
        ("CLS_GMM_WS2", "failed"), ("CLS_GMM_MoSe2", "failed"), ("paddleocr", "published")]
    assert "failed 3 times" in report.models[0].error and "check network access" in report.models[0].error
    assert report.models[1].error == report.models[0].error
    assert len(sleeps.waits) == 2  # one retry schedule for the record, not one per entry
    assert read_latest(s3_client, bucket, "paddleocr") is not None
    assert report.mirror is None


def test_a_new_archive_upstream_is_published_as_a_new_version(zenodo, make_seeder, s3_client, bucket, tmp_path):
    zenodo.add(RECORD, "PP_L2_material_agnostic.zip", make_zip({"model.joblib": b"v1"}))
    catalog = write_catalog(tmp_path, zenodo_entry("PP_L2_material_agnostic", "l2"))
    efs = tmp_path / "efs"
    first = make_seeder(zenodo.url).run(catalog.select(), efs_root=str(efs))
    zenodo.add(RECORD, "PP_L2_material_agnostic.zip", make_zip({"model.joblib": b"v2"}))

    second = make_seeder(zenodo.url).run(catalog.select(), efs_root=str(efs))

    assert second.models[0].status == "published" and second.models[0].version != first.models[0].version
    assert read_latest(s3_client, bucket, "PP_L2_material_agnostic").version == second.models[0].version
    assert efs_file(efs, "PP_L2_material_agnostic", "model.joblib") == b"v2"


def test_moving_latest_back_from_a_hand_published_version_is_reported_as_published(
        zenodo, make_seeder, s3_client, bucket, tmp_path):
    zenodo.add(RECORD, "PP_L2_material_agnostic.zip", make_zip({"model.joblib": b"catalog"}))
    catalog = write_catalog(tmp_path, zenodo_entry("PP_L2_material_agnostic", "l2"))
    first = make_seeder(zenodo.url).run(catalog.select())
    hand = tmp_path / "hand"
    hand.mkdir()
    (hand / "model.joblib").write_bytes(b"tuned by hand")
    hand_version = publish_directory(s3_client, bucket, "PP_L2_material_agnostic", hand, prefix="models/").version

    second = make_seeder(zenodo.url).run(catalog.select())

    # The catalog's version already existed (nothing uploaded), but LATEST moved back to it.
    assert second.models[0].version == first.models[0].version != hand_version
    assert second.models[0].status == "published" and second.models[0].uploaded_bytes == 0
    assert read_latest(s3_client, bucket, "PP_L2_material_agnostic").version == first.models[0].version
    third = make_seeder(zenodo.url).run(catalog.select())
    assert third.models[0].status == "unchanged"


def test_https_source_checked_by_sha256(zenodo, make_seeder, s3_client, bucket, tmp_path):
    data = model_zip("l2", "custom")
    zenodo.add(RECORD, "custom.zip", data)
    url = f"{zenodo.url}/records/{RECORD}/files/custom.zip"
    good = hashlib.sha256(data).hexdigest()
    catalog = write_catalog(tmp_path, *(
        f"  - name: {name}\n    enabled: true\n    approx_size_mb: 1\n    family: l2\n"
        f"    source: {{type: https, url: '{url}', sha256: '{sha}'}}\n"
        for name, sha in (("custom", good), ("custom-bad", "0" * 64))))

    report = make_seeder(zenodo.url).run(catalog.select())

    assert [m.status for m in report.models] == ["published", "failed"]
    assert "sha256 mismatch" in report.models[1].error
    assert read_latest(s3_client, bucket, "custom").source == {"type": "https", "url": url, "sha256": good}


def _object_count(client, bucket) -> int:
    return sum(len(page.get("Contents", [])) for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket))


def test_an_unexpected_error_fails_that_model_in_one_line_and_the_run_goes_on(zenodo, s3_client, bucket, tmp_path,
                                                                             sleeps):
    zenodo.add(RECORD, "CLS_GMM_WS2.zip", model_zip("gmm", "CLS_GMM_WS2"))
    catalog = write_catalog(tmp_path, PADDLE_ENTRY, zenodo_entry("CLS_GMM_WS2", "gmm"))
    scratch = tmp_path / "scratch-is-a-file"
    scratch.write_text("")  # no model folder can be made under it
    seeder = Seeder(s3_client, bucket, prefix="models/", workdir=scratch,
                    zenodo=ZenodoClient(zenodo.url, fetcher=HttpFetcher(RetryPolicy(attempts=1), sleep=sleeps)),
                    pipeline_factory=FakePaddleOCR())

    report = seeder.run(catalog.select())

    assert [m.status for m in report.models] == ["failed", "failed"]
    for model in report.models:
        assert model.error.startswith("unexpected NotADirectoryError: ") and "\n" not in model.error
        assert model.error.endswith("re-run the seed, and report it if it persists")


def test_real_size_is_logged_and_a_low_estimate_is_warned_about(zenodo, make_seeder, tmp_path, caplog):
    import logging
    import os

    data = make_zip({"model.joblib": os.urandom(1536 * 1024)})  # incompressible: 1.5 MiB > approx_size_mb: 1
    zenodo.add(RECORD, "PP_L2_material_agnostic.zip", data)
    catalog = write_catalog(tmp_path, zenodo_entry("PP_L2_material_agnostic", "l2", approx_mb=1))

    with caplog.at_level(logging.INFO, logger="modelsync.seed"):
        report = make_seeder(zenodo.url).run(catalog.select())

    assert report.models[0].status == "published"
    assert f"Zenodo {RECORD}/PP_L2_material_agnostic.zip is 1.5 MiB (md5 {hashlib.md5(data).hexdigest()})" in caplog.text
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert [w.split(" is ")[0] for w in warnings] == ["PP_L2_material_agnostic: the archive",
                                                     "PP_L2_material_agnostic: the extracted model"]
    assert all("above the catalog estimate approx_size_mb: 1; raise the estimate" in w for w in warnings)


def test_download_progress_is_reported_as_json_events(zenodo, s3_client, bucket, tmp_path, sleeps):
    import io

    from modelsync.progress import Progress

    data = model_zip("gmm", "CLS_GMM_WS2")
    zenodo.add(RECORD, "CLS_GMM_WS2.zip", data)
    stream = io.StringIO()
    seeder = Seeder(s3_client, bucket, prefix="models/", workdir=tmp_path / "work",
                    zenodo=ZenodoClient(zenodo.url, fetcher=HttpFetcher(RetryPolicy(attempts=1), sleep=sleeps)),
                    progress=Progress(stream=stream, mode="json", interval=0))

    seeder.run(write_catalog(tmp_path, zenodo_entry("CLS_GMM_WS2", "gmm")).select())

    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    download = [e for e in events if e.get("label") == "CLS_GMM_WS2 download"]
    assert [e["event"] for e in download][0] == "start" and download[0]["bytes"] == len(data)
    assert download[-1]["event"] == "done" and download[-1]["downloaded_bytes"] == len(data)


def test_a_failing_efs_mirror_is_reported_after_publishing(zenodo, make_seeder, s3_client, bucket, tmp_path):
    zenodo.add(RECORD, "CLS_GMM_WS2.zip", model_zip("gmm", "CLS_GMM_WS2"))
    catalog = write_catalog(tmp_path, zenodo_entry("CLS_GMM_WS2", "gmm"))
    not_a_directory = tmp_path / "efs"
    not_a_directory.write_text("")

    report = make_seeder(zenodo.url).run(catalog.select(), efs_root=str(not_a_directory))

    assert report.models[0].status == "published" and read_latest(s3_client, bucket, "CLS_GMM_WS2") is not None
    assert report.failed and not report.mirror.ok and "\n" not in report.mirror.error
    table = format_report(report)
    assert "seed: 1 published, 0 unchanged, 0 failed - EFS mirror failed" in table
    assert table.splitlines()[-1].startswith("FAILED EFS mirror: ")


# ---- concurrent seeds: the mirror follows LATEST, not the version this run saw -------------------

L2 = "PP_L2_material_agnostic"


def _publish_newer(s3_client, bucket, tmp_path, content: bytes, key: str) -> str:
    """What another seed (or `modelsync publish`) does meanwhile: publish a new version of L2, signed."""
    folder = tmp_path / f"newer-{hashlib.sha256(content).hexdigest()[:8]}"
    folder.mkdir()
    (folder / "model.joblib").write_bytes(content)
    return publish_directory(s3_client, bucket, L2, folder, prefix="models/", source={"type": "test"},
                             signer=load_signer(key)).version


def _current(efs, name) -> str:
    """The version directory <efs>/<name> points to (the mirror's current version)."""
    return (efs / name).resolve().name


def test_a_version_published_between_this_runs_publish_and_mirror_is_what_the_mirror_gets(
        zenodo, make_seeder, s3_client, bucket, tmp_path, seed_keys):
    zenodo.add(RECORD, f"{L2}.zip", make_zip({"model.joblib": b"v1"}))
    catalog = write_catalog(tmp_path, zenodo_entry(L2, "l2"))
    efs = tmp_path / "efs"
    seeder = make_seeder(zenodo.url)
    mirror_step = seeder.mirror
    newer = []

    def mirror_after_another_seed_published(efs_root, seeded, pins):
        newer.append(_publish_newer(s3_client, bucket, tmp_path, b"v2", seed_keys[0]))
        return mirror_step(efs_root, seeded, pins)

    seeder.mirror = mirror_after_another_seed_published
    report = seeder.run(catalog.select(), efs_root=str(efs))

    [model] = report.models
    assert model.status == "published" and model.version != newer[0]
    assert read_latest(s3_client, bucket, L2).version == newer[0]
    assert efs_file(efs, L2, "model.joblib") == b"v2" and newer[0] in _current(efs, L2)
    assert report.mirror.ok and report.mirror.versions == {L2: newer[0]}
    table = format_report(report)
    assert f"EFS mirror has {L2} at {newer[0]}, the LATEST published after this run saw {model.version}" in table
    assert "seed: 1 published, 0 unchanged, 0 failed" in table


def test_a_mirror_switch_overtaken_by_an_older_one_is_pulled_again(zenodo, make_seeder, s3_client, bucket, tmp_path,
                                                                   monkeypatch, seed_keys):
    """Seeder B resolved LATEST=v1 in its pull; seeder A then published v2 and mirrored it; B's switch to
    v1 lands last. B's re-check sees LATEST=v2 and pulls again, so the mirror ends at LATEST."""
    zenodo.add(RECORD, f"{L2}.zip", make_zip({"model.joblib": b"v1"}))
    catalog = write_catalog(tmp_path, zenodo_entry(L2, "l2"))
    efs = tmp_path / "efs"
    calls = []

    def pull_overtaken_on_first_call(client, bucket_, dest, models, **kwargs):
        calls.append(list(models))
        if len(calls) > 1:
            return real_pull(client, bucket_, dest, models, **kwargs)
        resolved = [f"{m}@{read_latest(client, bucket_, m).version}" for m in models]  # B resolves v1
        _publish_newer(s3_client, bucket, tmp_path, b"v2", seed_keys[0])  # A publishes v2 ...
        real_pull(client, bucket_, dest, models, **kwargs)  # ... and mirrors it
        return real_pull(client, bucket_, dest, resolved, **kwargs)  # B's switch to v1 lands last

    monkeypatch.setattr("modelsync.mirror.pull", pull_overtaken_on_first_call)
    report = make_seeder(zenodo.url).run(catalog.select(), efs_root=str(efs))

    latest = read_latest(s3_client, bucket, L2).version
    assert calls == [[L2], [L2]]
    assert report.mirror.ok and report.mirror.versions == {L2: latest} and report.models[0].version != latest
    assert efs_file(efs, L2, "model.joblib") == b"v2" and latest in _current(efs, L2)


def test_a_latest_that_keeps_moving_fails_the_mirror_in_one_line(zenodo, make_seeder, s3_client, bucket, tmp_path,
                                                                  monkeypatch, seed_keys):
    zenodo.add(RECORD, f"{L2}.zip", make_zip({"model.joblib": b"v1"}))
    catalog = write_catalog(tmp_path, zenodo_entry(L2, "l2"))
    calls = []

    def pull_then_another_publish(client, bucket_, dest, models, **kwargs):
        calls.append(list(models))
        result = real_pull(client, bucket_, dest, models, **kwargs)
        _publish_newer(s3_client, bucket, tmp_path, f"v{len(calls) + 1}".encode(), seed_keys[0])
        return result

    monkeypatch.setattr("modelsync.mirror.pull", pull_then_another_publish)
    report = make_seeder(zenodo.url).run(catalog.select(), efs_root=str(tmp_path / "efs"))

    assert len(calls) == MIRROR_ROUNDS
    assert report.models[0].status == "published" and report.failed and not report.mirror.ok
    assert report.mirror.error == (f"LATEST of {L2} kept changing while the EFS mirror was brought up to date "
                                   "(another seed or publish is running): re-run the seed when it has finished")
    assert format_report(report).splitlines()[-1] == f"FAILED EFS mirror: {report.mirror.error}"


def test_the_services_pinned_versions_stay_in_the_mirror_beside_latest(zenodo, make_seeder, s3_client, bucket,
                                                                     tmp_path):
    """efs mode: a task pinned to v1 links the mirror's v1 directory; a seed that brings the mirror to a
    newer LATEST must keep v1 there (present and recorded) and must not point the link at it."""
    zenodo.add(RECORD, f"{L2}.zip", make_zip({"model.joblib": b"v1"}))
    catalog = write_catalog(tmp_path, zenodo_entry(L2, "l2"))
    pinned = make_seeder(zenodo.url).run(catalog.select()).models[0].version  # published, never mirrored
    zenodo.add(RECORD, f"{L2}.zip", make_zip({"model.joblib": b"v2"}))  # a new archive upstream
    efs = tmp_path / "efs"

    report = make_seeder(zenodo.url).run(catalog.select(), efs_root=str(efs), mirror_pins=(f"{L2}@{pinned}",))
    newer = report.models[0].version

    assert newer != pinned and report.mirror.ok and report.mirror.versions == {L2: newer}
    assert report.mirror.pins == [f"{L2}@{pinned}"]
    assert newer in _current(efs, L2) and efs_file(efs, L2, "model.joblib") == b"v2"  # the link follows LATEST
    store = LocalStore(efs)
    assert store.read_record(L2, pinned) is not None and not store.missing_files(store.read_record(L2, pinned))
    assert (Path(store.version_dir(L2, pinned)) / "model.joblib").read_bytes() == b"v1"
    assert f"EFS mirror keeps the service's pinned versions: {L2}@{pinned}" in format_report(report)

# -- security review: download caps and file limits from the catalog ---------------------------

def test_a_download_past_the_cap_fails_that_entry_in_one_line(zenodo, make_seeder, s3_client, bucket, tmp_path):
    """Review finding B: a 30 MiB archive was fetched in full past a 1 MiB estimate."""
    import os

    big = make_zip({"model.joblib": os.urandom(30 * 1024 * 1024)})
    zenodo.add(RECORD, "big.zip", big)
    zenodo.unsized.add("big.zip")  # no Content-Length: only the streaming cap can stop it
    zenodo.add(RECORD, "PP_L2_material_agnostic.zip", big)  # the records API lists its size
    url = f"{zenodo.url}/records/{RECORD}/files/big.zip"
    catalog = write_catalog(tmp_path, zenodo_entry("PP_L2_material_agnostic", "l2", approx_mb=1),
                            f"  - name: custom\n    enabled: true\n    approx_size_mb: 2\n    max_download_mb: 5\n"
                            f"    family: l2\n    source: {{type: https, url: '{url}', "
                            f"sha256: '{hashlib.sha256(big).hexdigest()}'}}\n")

    report = make_seeder(zenodo.url).run(catalog.select())

    assert [m.status for m in report.models] == ["failed", "failed"]
    listed, streamed = (m.error for m in report.models)
    assert listed == (f"PP_L2_material_agnostic: refused: Zenodo {RECORD}/PP_L2_material_agnostic.zip: the source "
                      f"lists {len(big)} bytes, more than the download cap of 4194304 bytes (max_download_mb: 4 = 4 x "
                      f"approx_size_mb); raise max_download_mb (or approx_size_mb) for this catalog entry if the "
                      f"source is trusted")
    assert streamed.startswith(f"custom: refused: custom ({url}): {url} sent more than the download cap of 5242880 "
                               f"bytes; stopped there and deleted the partial file (max_download_mb: 5); raise")
    assert zenodo.downloads("PP_L2") == []  # refused before any request for the bytes
    assert _object_count(s3_client, bucket) == 0
    assert list((tmp_path / "work").iterdir()) == []


def test_max_extracted_files_reaches_the_extraction(zenodo, make_seeder, tmp_path):
    zenodo.add(RECORD, "PP_L2_material_agnostic.zip", make_zip({"model.joblib": b"m", "a": b"", "b": b"", "c": b""}))
    catalog = write_catalog(tmp_path, zenodo_entry("PP_L2_material_agnostic", "l2").replace(
        "    family:", "    max_extracted_files: 3\n    family:"))
    report = make_seeder(zenodo.url).run(catalog.select())
    assert report.models[0].error == ("PP_L2_material_agnostic.zip: holds 4 files and folders, more than the limit of "
                                      "3; raise max_extracted_files for this catalog entry if the archive is trusted")


def digest_rows(table: str) -> dict[str, list[str]]:
    """MODEL -> [ARCHIVE SHA256, PINNED] from the summary's digest table."""
    lines = table.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split()[:3] == ["MODEL", "ARCHIVE", "SHA256"])
    rows = {}
    for line in lines[start + 1:]:
        words = line.split()
        if len(words) != 3 or len(words[1]) != 64:
            break
        rows[words[0]] = words[1:]
    return rows


def test_a_pinned_archive_is_checked_and_the_summary_prints_the_digests_to_pin(zenodo, make_seeder, s3_client, bucket,
                                                                             tmp_path):
    """Issue 21: no catalog entry pinned a digest, so a signature attested whatever upstream served that day."""
    archives = {name: model_zip("gmm", name) for name in ("CLS_GMM_WS2", "CLS_GMM_WSe2", "CLS_GMM_MoSe2")}
    for name, data in archives.items():
        zenodo.add(RECORD, f"{name}.zip", data)
    digest = {name: hashlib.sha256(data).hexdigest() for name, data in archives.items()}
    catalog = write_catalog(tmp_path, zenodo_entry("CLS_GMM_WS2", "gmm", sha256=digest["CLS_GMM_WS2"].upper()),
                            zenodo_entry("CLS_GMM_WSe2", "gmm", sha256="0" * 64), zenodo_entry("CLS_GMM_MoSe2", "gmm"))

    first = make_seeder(zenodo.url).run(catalog.select())

    assert [m.status for m in first.models] == ["published", "failed", "published"]
    assert first.models[1].error == (
        f"CLS_GMM_WSe2: the archive CLS_GMM_WSe2.zip has sha256 {digest['CLS_GMM_WSe2']}, but the catalog pins "
        f"{'0' * 64}: nothing published; if the new archive is the one to serve, pin its sha256 in the catalog "
        "(docs/seeding.md)")
    assert read_latest(s3_client, bucket, "CLS_GMM_WSe2") is None
    assert read_latest(s3_client, bucket, "CLS_GMM_WS2").source["sha256"] == digest["CLS_GMM_WS2"]
    table = format_report(first)
    assert digest_rows(table) == {"CLS_GMM_WS2": [digest["CLS_GMM_WS2"], "yes"],
                                  "CLS_GMM_WSe2": [digest["CLS_GMM_WSe2"], "MISMATCH"],
                                  "CLS_GMM_MoSe2": [digest["CLS_GMM_MoSe2"], "no"]}
    assert 'pin an archive: add sha256: "<ARCHIVE SHA256>" to its source in the catalog' in table

    # Unchanged models are not downloaded again; the digest comes from what their manifest recorded.
    downloads = len(zenodo.downloads())
    second = make_seeder(zenodo.url).run(catalog.select())
    assert [m.status for m in second.models] == ["unchanged", "failed", "unchanged"]
    assert len(zenodo.downloads()) == downloads + 1  # only the refused one, checked again
    assert digest_rows(format_report(second)) == digest_rows(table)

    # A pin that no longer matches what LATEST was built from is checked against a fresh download.
    repinned = write_catalog(tmp_path, zenodo_entry("CLS_GMM_MoSe2", "gmm", sha256="f" * 64))
    third = make_seeder(zenodo.url).run(repinned.select())
    assert third.models[0].status == "failed" and "but the catalog pins " + "f" * 64 in third.models[0].error
