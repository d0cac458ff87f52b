"""The warm path's own signed GET (modelsync.quick_get): botocore's signature, botocore's fallback."""

import datetime
import subprocess
import sys

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from modelsync import quick_get
from modelsync.pull import pull

from .helpers import merged_env

WHEN = datetime.datetime(2026, 12, 2, 1, 2, 3, tzinfo=datetime.timezone.utc)


@pytest.mark.parametrize("url, token", [
    ("http://127.0.0.1:9000/bucket/models/m/LATEST", "TOKEN"),
    ("https://bucket.s3.eu-west-1.amazonaws.com/models/m-1.2_x/LATEST", None),
])
def test_the_signature_is_botocores(url, token):
    host, path = url.split("/", 3)[2], "/" + url.split("/", 3)[3]
    ours = quick_get.sign("GET", host, path, "eu-west-1", ("AKID", "SECRET", token), WHEN)

    request = AWSRequest(method="GET", url=url, headers={"x-amz-content-sha256": quick_get.EMPTY_SHA256})
    auth = S3SigV4Auth(Credentials("AKID", "SECRET", token), "s3", "eu-west-1")
    request.context["timestamp"] = WHEN.strftime("%Y%m%dT%H%M%SZ")
    auth._modify_request_before_signing(request)
    expected = auth.signature(auth.string_to_sign(request, auth.canonical_request(request)), request)
    assert ours["Authorization"].endswith(f"Signature={expected}")
    assert ours["x-amz-date"] == request.headers["X-Amz-Date"]


@pytest.mark.parametrize("env, bucket", [
    ({"AWS_PROFILE": "dev"}, "b-1"),
    ({"AWS_ENDPOINT_URL_S3": "http://minio.internal:9000"}, "b-1"),  # a name: botocore may use virtual hosts
    ({"AWS_ENDPOINT_URL_S3": None, "AWS_ENDPOINT_URL": None}, "dotted.bucket"),
    ({"AWS_REGION": None, "AWS_DEFAULT_REGION": None}, "b-1"),
    ({"AWS_USE_FIPS_ENDPOINT": "true"}, "b-1"),
    ({"HTTPS_PROXY": "http://127.0.0.1:3128"}, "b-1"),
])
def test_anything_unusual_is_left_to_botocore(monkeypatch, env, bucket):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for name, value in env.items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    assert quick_get.get(bucket, "models/m/LATEST", max_bytes=4096) is None


def test_credentials_other_than_the_environment_or_the_task_role_are_left_to_botocore(monkeypatch, tmp_path):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY", raising=False)
    credentials = tmp_path / "credentials"
    credentials.write_text("[default]\naws_access_key_id = A\naws_secret_access_key = B\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/credentials/x")
    assert quick_get._credentials(1.0) is None  # botocore reads the file before the task role


def test_a_warm_pull_in_a_new_process_never_imports_botocore(client, bucket, publish, tmp_path):
    publish("m", {"a.bin": b"x" * 1000})
    pull(client, bucket, tmp_path / "d")
    script = ("import sys\nfrom modelsync.pull import pull\nfrom modelsync.s3 import LazyClient\n"
              f"result = pull(LazyClient(), {bucket!r}, {str(tmp_path / 'd')!r}, ['m'])\n"
              "assert result.skipped_files == 1, result\n"
              "print(sorted(m for m in sys.modules if m.split('.')[0] in ('boto3', 'botocore', 'urllib3')))\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=merged_env(None),
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_the_lazy_client_is_created_once_when_many_threads_need_it_at_once(s3_endpoint, monkeypatch):
    """16 download threads reach their first request together: each boto3 client costs ~0.3 s of CPU
    and ~15 MiB, so a race here once cost a cold pull several CPU seconds and 250 MiB."""
    import threading

    from modelsync import s3

    made = []
    real = s3.make_client

    def counting(**kwargs):
        made.append(1)
        return real(**kwargs)

    monkeypatch.setattr(s3, "make_client", counting)
    client = s3.LazyClient()
    start = threading.Barrier(16)

    def first_request():
        start.wait()
        client.meta  # any attribute creates the client

    threads = [threading.Thread(target=first_request) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(made) == 1
