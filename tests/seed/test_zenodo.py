"""Zenodo records client and verified downloads, against the local fake Zenodo over real HTTP."""

from __future__ import annotations

import hashlib
import socket

import pytest

from modelsync.errors import ModelsyncError
from modelsync.seed.fetch import DigestMismatch, HttpFetcher, LocalWriteError, RetryPolicy, parse_retry_after
from modelsync.seed.zenodo import ZenodoClient
from tools.fake_zenodo import model_zip

RECORD = "15765516"


@pytest.fixture
def client(zenodo, sleeps):
    fetcher = HttpFetcher(RetryPolicy(attempts=4, backoff_seconds=0.5, timeout_seconds=5), sleep=sleeps)
    return ZenodoClient(zenodo.url, fetcher=fetcher)


@pytest.mark.parametrize("shape", ["current", "legacy", "rdm"])
def test_lists_and_downloads_in_every_field_spelling(zenodo, client, tmp_path, shape):
    data = model_zip("amm", "CLS_AMM_WS2")
    zenodo.add(RECORD, "CLS_AMM_WS2.zip", data)
    zenodo.shape = shape

    zfile = client.file(RECORD, "CLS_AMM_WS2.zip")
    assert (zfile.size, zfile.md5) == (len(data), hashlib.md5(data).hexdigest())

    dest = tmp_path / "a.zip"
    assert client.download(zfile, dest) == len(data)
    assert dest.read_bytes() == data
    assert [p.name for p in tmp_path.iterdir()] == ["a.zip"]  # no temporary file left behind
    if shape == "legacy":  # the broken API link failed, the fallback URL served the file
        assert [s for p, s in zenodo.log if "broken-bucket-id" in p] == [404]
        assert zenodo.downloads() == [f"/records/{RECORD}/files/CLS_AMM_WS2.zip"]
    else:
        assert zenodo.downloads() == [f"/api/records/{RECORD}/files/CLS_AMM_WS2.zip/content"]


def test_record_is_fetched_once_per_client(zenodo, client):
    zenodo.add(RECORD, "A.zip", b"a")
    zenodo.add(RECORD, "B.zip", b"b")
    client.file(RECORD, "A.zip")
    client.file(RECORD, "B.zip")
    assert [p for p, _ in zenodo.log] == [f"/api/records/{RECORD}"]


def test_429_with_retry_after_then_success(zenodo, client, sleeps):
    zenodo.add(RECORD, "A.zip", b"a")
    zenodo.fail(r"^/api/records/\d+$", 429, times=2, Retry_After="7")
    assert client.file(RECORD, "A.zip").size == 1
    assert sleeps.waits == [7.0, 7.0]
    assert [s for _, s in zenodo.log] == [429, 429, 200]


def test_5xx_backs_off_exponentially_then_succeeds(zenodo, client, tmp_path, sleeps):
    zenodo.add(RECORD, "A.zip", b"payload")
    zenodo.fail(r"/content$", 503, times=2)
    client.download(client.file(RECORD, "A.zip"), tmp_path / "a")
    assert (tmp_path / "a").read_bytes() == b"payload"
    first, second = sleeps.waits
    assert 0.25 <= first <= 0.5 <= second <= 1.0  # 0.5 s doubled, with jitter in [50 %, 100 %]


def test_retry_after_is_capped(zenodo, sleeps):
    fetcher = HttpFetcher(RetryPolicy(attempts=2, max_wait_seconds=30), sleep=sleeps)
    zenodo.add(RECORD, "A.zip", b"a")
    zenodo.fail(r"^/api/records/", 429, Retry_After="86400")
    ZenodoClient(zenodo.url, fetcher=fetcher).record_files(RECORD)
    assert sleeps.waits == [30]


def test_parse_retry_after_accepts_seconds_and_http_dates():
    assert parse_retry_after("12") == 12.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now=1445412500.0) == 10.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_connection_dropped_mid_body_is_retried(zenodo, client, tmp_path, sleeps):
    data = model_zip("m2f", "SEG_M2F_WS2")
    zenodo.add(RECORD, "SEG_M2F_WS2.zip", data)
    zenodo.truncate_once.add("SEG_M2F_WS2.zip")
    client.download(client.file(RECORD, "SEG_M2F_WS2.zip"), tmp_path / "m.zip")
    assert (tmp_path / "m.zip").read_bytes() == data
    assert len(sleeps.waits) == 1


def test_md5_mismatch_leaves_no_file(zenodo, client, tmp_path):
    zenodo.add(RECORD, "A.zip", b"real bytes")
    zenodo.wrong_md5.add("A.zip")
    with pytest.raises(DigestMismatch, match=r"Zenodo 15765516/A.zip: md5 mismatch .*re-run the seed"):
        client.download(client.file(RECORD, "A.zip"), tmp_path / "a.zip")
    assert list(tmp_path.iterdir()) == []


def test_unknown_record_names_record_and_base_url(zenodo, client):
    with pytest.raises(ModelsyncError, match=r"Zenodo record 999 not found at http://127\.0\.0\.1:\d+ \(HTTP 404\); check"):
        client.record_files("999")


def test_unknown_file_lists_what_the_record_has(zenodo, client):
    zenodo.add(RECORD, "SEG_M2F_WS2.zip", b"x")
    with pytest.raises(ModelsyncError, match=r"has no file 'SEG_M2F_WSX.zip' \(it has: SEG_M2F_WS2.zip\); fix"):
        client.file(RECORD, "SEG_M2F_WSX.zip")


def test_file_listed_but_not_served_is_a_clear_error(zenodo, client, tmp_path):
    zenodo.add(RECORD, "A.zip", b"a")
    zenodo.missing_content.add("A.zip")
    with pytest.raises(ModelsyncError, match=r"HTTP 404 from .*cannot be downloaded"):
        client.download(client.file(RECORD, "A.zip"), tmp_path / "a.zip")
    assert list(tmp_path.iterdir()) == []


def test_unreachable_zenodo_fails_after_retries(sleeps):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    fetcher = HttpFetcher(RetryPolicy(attempts=3, timeout_seconds=2), sleep=sleeps)
    with pytest.raises(ModelsyncError, match=r"failed 3 times \(last: .*refused.*\); check network access"):
        ZenodoClient(f"http://127.0.0.1:{port}", fetcher=fetcher).record_files(RECORD)
    assert len(sleeps.waits) == 2


def test_https_source_download_checks_sha256(zenodo, tmp_path, sleeps):
    zenodo.add(RECORD, "plain.zip", b"plain archive")
    url = f"{zenodo.url}/records/{RECORD}/files/plain.zip"
    fetcher = HttpFetcher(RetryPolicy(attempts=2), sleep=sleeps)
    good = hashlib.sha256(b"plain archive").hexdigest()
    fetcher.download(url, tmp_path / "ok.zip", what="plain", algorithm="sha256", expected_digest=good)
    assert (tmp_path / "ok.zip").read_bytes() == b"plain archive"
    with pytest.raises(DigestMismatch, match="sha256 mismatch"):
        fetcher.download(url, tmp_path / "bad.zip", what="plain", algorithm="sha256", expected_digest="0" * 64)
    assert not (tmp_path / "bad.zip").exists()


def test_a_local_write_failure_is_not_retried_as_a_network_problem(zenodo, client, tmp_path, sleeps):
    zenodo.add(RECORD, "A.zip", b"a")
    with pytest.raises(LocalWriteError, match=r"cannot write .*\.a\.zip\.part \(No such file or directory\); check the scratch"):
        client.download(client.file(RECORD, "A.zip"), tmp_path / "missing-dir" / "a.zip")
    assert sleeps.waits == []
    assert zenodo.downloads() == [f"/api/records/{RECORD}/files/A.zip/content"]  # one try only


def test_disk_full_while_writing_says_to_free_space(zenodo, client, tmp_path, sleeps):
    import os

    if not os.path.exists("/dev/full"):
        pytest.skip("needs /dev/full")
    zenodo.add(RECORD, "A.zip", b"a" * 1000)
    (tmp_path / ".a.zip.part").symlink_to("/dev/full")  # every write fails with ENOSPC
    with pytest.raises(LocalWriteError, match=r"No space left on device\); free disk space"):
        client.download(client.file(RECORD, "A.zip"), tmp_path / "a.zip")
    assert sleeps.waits == []


# -- security review, finding B: download caps, file links from the API ------------------------

MIB = 1024 * 1024


def test_invenio_rdm_shape_downloads_links_content_not_the_metadata_in_self(zenodo, client, tmp_path):
    import json
    import urllib.request

    data = model_zip("gmm", "CLS_GMM_WS2")
    zenodo.add(RECORD, "CLS_GMM_WS2.zip", data)
    zenodo.shape = "rdm"
    listed = zenodo.record_json(RECORD)["files"]["entries"][0]["links"]
    with urllib.request.urlopen(listed["self"], timeout=5) as response:  # the real InvenioRDM shape:
        assert json.loads(response.read())["key"] == "CLS_GMM_WS2.zip"  # self is the file's metadata
    zenodo.log.clear()

    client.download(client.file(RECORD, "CLS_GMM_WS2.zip"), tmp_path / "a.zip")

    assert (tmp_path / "a.zip").read_bytes() == data
    assert [p for p, _ in zenodo.log] == [f"/api/records/{RECORD}",
                                          f"/api/records/{RECORD}/files/CLS_GMM_WS2.zip/content"]


def test_file_links_to_another_host_are_ignored_and_the_fallback_is_used(zenodo, client, tmp_path, caplog):
    from tools.fake_zenodo import FakeZenodo

    elsewhere = FakeZenodo()  # another server: what a tampered answer could point the seeder at
    try:
        elsewhere.add(RECORD, "A.zip", b"payload")
        zenodo.add(RECORD, "A.zip", b"payload")
        zenodo.link_base = elsewhere.url
        with caplog.at_level("WARNING", logger="modelsync"):
            client.download(client.file(RECORD, "A.zip"), tmp_path / "a.zip")
    finally:
        elsewhere.close()
    assert elsewhere.log == []
    assert zenodo.downloads() == [f"/records/{RECORD}/files/A.zip"]
    assert f"ignoring the link '{elsewhere.url}/api/records/{RECORD}/files/A.zip/content' for A.zip" in caplog.text


@pytest.mark.parametrize("link, followed", [
    ("https://zenodo.org/api/records/1/files/A.zip/content", True),
    ("https://ZENODO.org:443/api/records/1/files/A.zip/content", True),
    ("http://zenodo.org/api/records/1/files/A.zip/content", False),  # plain http
    ("https://zenodo.org.attacker.example/x", False),
    ("https://zenodo.org@attacker.example/x", False),
    ("https://zenodo.org:8443/x", False),
    ("https://attacker.example/x", False),
    ("ftp://zenodo.org/x", False),
])
def test_only_https_links_on_the_configured_zenodo_host_are_followed(link, followed):
    doc = {"files": [{"key": "A.zip", "size": 1, "checksum": "md5:" + "0" * 32, "links": {"self": link}}]}
    urls = ZenodoClient("https://zenodo.org")._parse_files("1", doc)["A.zip"].urls
    fallback = "https://zenodo.org/records/1/files/A.zip?download=1"
    assert urls == ((link, fallback) if followed else (fallback,))


def test_a_listed_size_over_the_cap_is_refused_before_any_download(zenodo, client, tmp_path):
    from modelsync.seed.fetch import DownloadTooLarge

    zenodo.add(RECORD, "A.zip", b"x" * (2 * MIB))
    with pytest.raises(DownloadTooLarge, match=r"^Zenodo 15765516/A.zip: the source lists 2097152 bytes, more than "
                                               r"the download cap of 1048576 bytes$"):
        client.download(client.file(RECORD, "A.zip"), tmp_path / "a.zip", max_bytes=MIB)
    assert zenodo.downloads() == [] and list(tmp_path.iterdir()) == []


def test_a_content_length_over_the_cap_is_refused_before_reading(zenodo, tmp_path, sleeps):
    from modelsync.seed.fetch import DownloadTooLarge

    zenodo.add(RECORD, "big.zip", b"x" * (3 * MIB))
    read = []
    with pytest.raises(DownloadTooLarge, match=r"announces 3145728 bytes \(Content-Length\), more than the download "
                                               r"cap of 1048576 bytes"):
        HttpFetcher(RetryPolicy(attempts=2), sleep=sleeps).download(
            f"{zenodo.url}/records/{RECORD}/files/big.zip", tmp_path / "a.zip", what="big", algorithm="sha256",
            expected_digest="0" * 64, max_bytes=MIB, progress=read.append)
    assert read == [] and list(tmp_path.iterdir()) == [] and sleeps.waits == []


def test_a_body_without_length_is_cut_off_at_the_cap_and_the_partial_file_deleted(zenodo, tmp_path, sleeps):
    from modelsync.seed.fetch import DownloadTooLarge

    zenodo.add(RECORD, "endless.zip", b"x" * (30 * MIB))
    zenodo.unsized.add("endless.zip")
    read = []
    with pytest.raises(DownloadTooLarge, match=r"sent more than the download cap of 1048576 bytes; stopped there and "
                                               r"deleted the partial file"):
        HttpFetcher(RetryPolicy(attempts=2), sleep=sleeps).download(
            f"{zenodo.url}/records/{RECORD}/files/endless.zip", tmp_path / "a.zip", what="endless",
            algorithm="sha256", expected_digest="0" * 64, max_bytes=MIB, progress=read.append)
    assert sum(read) == MIB + 1  # one byte past the cap proves the body is too long; not a byte more
    assert list(tmp_path.iterdir()) == [] and sleeps.waits == []
