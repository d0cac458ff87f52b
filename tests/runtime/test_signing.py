"""Signed manifests against the real S3 (and KMS) server: publish signs, pull / verify / list check.

Keys are made at test time with openssl, as docs/runtime.md tells operators to; none is committed.
"""

from __future__ import annotations

import json
import os
import subprocess
from unittest.mock import ANY

import boto3
import pytest

from modelsync.manifest import latest_key, manifest_key
from modelsync.signing import signature_key

from .helpers import assert_one_line_error, make_keypair, publish_cli, run_cli, tree, write_model

FILES = {"model.bin": b"weights " * 1000, "config.json": b'{"a": 1}'}
FILES_2 = {"model.bin": b"newer weights " * 1000, "config.json": b'{"a": 2}'}


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    base = tmp_path_factory.mktemp("keys")
    return {"good": make_keypair(base / "good"), "other": make_keypair(base / "other")}


@pytest.fixture
def env(bucket):
    return {"MODELSYNC_BUCKET": bucket, "MODELSYNC_PART_SIZE_MIB": "1"}


def _publish(tmp_path, env, files, key=None, name="m") -> str:
    return publish_cli(tmp_path, env, files, key, name)


def _pull(dest, env, trust=None, *extra):
    args = ["pull", "--dest", dest, "--progress", "quiet", *extra] + (["--trust-key", trust] if trust else [])
    return run_cli(*args, env=env)


def _get(s3_client, bucket, key) -> bytes:
    return s3_client.get_object(Bucket=bucket, Key=key)["Body"].read()


def _put(s3_client, bucket, key, body: bytes) -> None:
    s3_client.put_object(Bucket=bucket, Key=key, Body=body)


def _nothing_switched(dest, view, before_link: str | None, version: str) -> None:
    """The model link is where it was, the refused version has no directory, the view was not built."""
    link = os.path.join(dest, "m")
    assert (os.readlink(link) if os.path.islink(link) else None) == before_link
    assert not os.path.exists(os.path.join(dest, ".modelsync", "versions", "m", version))
    assert not os.path.exists(view) or os.listdir(view) == [] or before_link is not None


def test_signed_publish_then_trusted_pull_verify_and_list(tmp_path, env, keys, s3_client, bucket):
    key, pub = keys["good"]
    version = _publish(tmp_path, env, FILES, key)
    envelope = json.loads(_get(s3_client, bucket, signature_key("models/", "m", version)))
    assert envelope["format"] == "modelsync-signature-1" and envelope["algorithm"] == "ECDSA_SHA_256"
    assert set(json.loads(_get(s3_client, bucket, latest_key("models/", "m")))) == {"version", "signature", "statement"}

    dest, view = tmp_path / "d", tmp_path / "v"
    proc = _pull(dest, env, pub, "--view", view)
    assert proc.returncode == 0, proc.stderr
    assert tree(dest / "m") == {**FILES, "model.sig": ANY}  # the OMS bundle beside the files
    assert os.path.islink(view / "m")
    again = _pull(dest, env, pub)  # warm: the kept signature of the record is checked locally
    assert again.returncode == 0, again.stderr
    ok = run_cli("verify", "--dest", dest, "--trust-key", pub, env=env)
    assert ok.returncode == 0 and "m@" in ok.stdout, ok.stderr
    listed = run_cli("list", "--trust-key", pub, "--json", env=env, check=True)
    assert json.loads(listed.stdout)[0]["versions"][0]["signature"] == "valid"


def _tamper_manifest(s3_client, bucket, version):
    key = manifest_key("models/", "m", version)
    data = json.loads(_get(s3_client, bucket, key))
    data["source"] = {"url": "https://example.org/evil"}
    _put(s3_client, bucket, key, json.dumps(data).encode())


def _tamper_file_list(s3_client, bucket, version):
    key = manifest_key("models/", "m", version)
    data = json.loads(_get(s3_client, bucket, key))
    data["files"] = [f for f in data["files"] if f["path"] != "config.json"]
    _put(s3_client, bucket, key, json.dumps(data).encode())


def _remove_signature(s3_client, bucket, version):
    s3_client.delete_object(Bucket=bucket, Key=signature_key("models/", "m", version))


@pytest.mark.parametrize("tamper", [_tamper_manifest, _tamper_file_list, _remove_signature],
                         ids=["tampered-manifest", "tampered-file-list", "missing-signature"])
def test_refused_and_nothing_switched(tmp_path, env, keys, s3_client, bucket, tamper):
    key, pub = keys["good"]
    first = _publish(tmp_path, env, FILES, key)
    dest, view = tmp_path / "d", tmp_path / "v"
    assert _pull(dest, env, pub, "--view", view).returncode == 0
    link_before, view_before = os.readlink(dest / "m"), os.readlink(view / "m")
    second = _publish(tmp_path, env, FILES_2, key)
    tamper(s3_client, bucket, second)

    proc = _pull(dest, env, pub, "--view", view)
    assert proc.returncode == 1
    assert_one_line_error(proc, "signature refused", f"m/{second}/manifest.json")
    _nothing_switched(dest, view, link_before, second)
    assert os.readlink(view / "m") == view_before
    assert tree(dest / "m") == {**FILES, "model.sig": ANY}  # the OMS bundle beside the files
    # The explicit version is refused the same way.
    pinned = _pull(tmp_path / "d2", env, pub, "--model", f"m@{second}")
    assert pinned.returncode == 1
    assert_one_line_error(pinned, "signature refused")
    assert not os.path.exists(tmp_path / "d2" / "m")
    assert first != second


def test_wrong_trust_key_is_refused(tmp_path, env, keys):
    _publish(tmp_path, env, FILES, keys["good"][0])
    dest = tmp_path / "d"
    proc = _pull(dest, env, keys["other"][1])
    assert proc.returncode == 1
    assert_one_line_error(proc, "signature refused", "does not verify with the trust key")
    assert not os.path.lexists(dest / "m")
    assert not os.listdir(dest / ".modelsync" / "versions")


def test_unsigned_version_is_refused_with_a_trust_key(tmp_path, env, keys):
    _publish(tmp_path, env, FILES)  # no signing key
    proc = _pull(tmp_path / "d", env, keys["good"][1])
    assert proc.returncode == 1
    assert_one_line_error(proc, "signature refused", "no signature")
    assert not os.path.lexists(tmp_path / "d" / "m")


@pytest.mark.parametrize("how", ["old-signature", "unsigned"])
def test_swapped_latest_is_refused(tmp_path, env, keys, s3_client, bucket, how):
    key, pub = keys["good"]
    first = _publish(tmp_path, env, FILES, key)
    second = _publish(tmp_path, env, FILES_2, key)
    latest = latest_key("models/", "m")
    signed = json.loads(_get(s3_client, bucket, latest))
    assert signed["version"] == second
    swapped = {"version": first, **({"signature": signed["signature"]} if how == "old-signature" else {})}
    _put(s3_client, bucket, latest, json.dumps(swapped).encode())

    proc = _pull(tmp_path / "d", env, pub)
    assert proc.returncode == 1
    assert_one_line_error(proc, "signature refused", "models/m/LATEST")
    assert not os.path.lexists(tmp_path / "d" / "m")
    # Both versions stay pullable by their (signed) manifests.
    assert _pull(tmp_path / "d", env, pub, "--model", f"m@{first}").returncode == 0


def test_without_a_trust_key_nothing_changes(tmp_path, env, keys, s3_client, bucket):
    """No trust key: unsigned and signed versions pull as before, even a tampered signature."""
    _publish(tmp_path, env, FILES)
    assert _pull(tmp_path / "d", env).returncode == 0
    version = _publish(tmp_path, env, FILES_2, keys["good"][0])
    _remove_signature(s3_client, bucket, version)
    proc = _pull(tmp_path / "d", env)
    assert proc.returncode == 0, proc.stderr
    assert tree(tmp_path / "d" / "m") == {**FILES_2, "model.sig": ANY}
    listed = json.loads(run_cli("list", "--json", env=env, check=True).stdout)
    assert all("signature" not in v for v in listed[0]["versions"])


def test_verify_with_a_trust_key_needs_a_trusted_pull(tmp_path, env, keys):
    key, pub = keys["good"]
    _publish(tmp_path, env, FILES, key)
    dest, view = tmp_path / "d", tmp_path / "v"
    assert _pull(dest, env).returncode == 0  # no trust key: no signature kept
    proc = run_cli("verify", "--dest", dest, "--trust-key", pub, "--view", view, env=env)
    assert proc.returncode == 1
    assert "signature refused" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not os.path.exists(view / "m")
    assert _pull(dest, env, pub).returncode == 0  # a trusted pull keeps the signature
    assert run_cli("verify", "--dest", dest, "--trust-key", pub, "--view", view, env=env).returncode == 0
    wrong = run_cli("verify", "--dest", dest, "--trust-key", keys["other"][1], env=env)
    assert wrong.returncode == 1 and "does not verify with the trust key" in wrong.stderr


def test_list_marks_unsigned_and_invalid_versions(tmp_path, env, keys, s3_client, bucket):
    key, pub = keys["good"]
    unsigned = _publish(tmp_path, env, FILES)
    signed = _publish(tmp_path, env, FILES_2, key)
    proc = run_cli("list", "--trust-key", pub, env=env, check=True)
    rows = {line.split()[1]: line for line in proc.stdout.splitlines()[1:]}
    assert "SIGNED" in proc.stdout.splitlines()[0]
    assert "UNSIGNED" in rows[unsigned] and " yes " in rows[signed]
    _tamper_manifest(s3_client, bucket, signed)
    listed = json.loads(run_cli("list", "--trust-key", pub, "--json", env=env, check=True).stdout)
    states = {v["version"]: v["signature"] for v in listed[0]["versions"]}
    assert states == {unsigned: "missing", signed: "invalid"}


def test_bad_key_files_are_one_line_errors(tmp_path, env, keys):
    _publish(tmp_path, env, FILES, keys["good"][0])
    missing = _pull(tmp_path / "d", env, str(tmp_path / "nope.pem"))
    assert missing.returncode == 2
    assert_one_line_error(missing, "--trust-key / MODELSYNC_TRUST_KEY", "cannot read it")
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a key\n")
    proc = run_cli("publish", tmp_path / "d", "--name", "m", "--signing-key", garbage, env=env)
    assert proc.returncode == 2
    assert_one_line_error(proc, "--signing-key / MODELSYNC_SIGNING_KEY", "not an unencrypted PEM private key")
    rsa = tmp_path / "rsa.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-out", str(rsa)], check=True, capture_output=True)
    proc = _pull(tmp_path / "d", env, str(rsa))
    assert proc.returncode == 2
    assert_one_line_error(proc, "not an EC P-256")


# KMS: moto's server implements ECC_NIST_P256 SIGN_VERIFY keys (Sign, Verify, GetPublicKey) ------

@pytest.fixture
def kms(s3_endpoint):
    client = boto3.client("kms", endpoint_url=s3_endpoint, region_name="us-east-1")

    def make(alias: str) -> str:
        key = client.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]
        client.create_alias(AliasName=alias, TargetKeyId=key["KeyId"])
        return key["Arn"]

    return make


def test_kms_signed_publish_and_trusted_pull(tmp_path, env, kms, s3_endpoint, keys, s3_client, bucket):
    suffix = bucket[-12:]
    arn = kms(f"alias/models-{suffix}")
    other = kms(f"alias/other-{suffix}")
    env = {**env, "AWS_ENDPOINT_URL_KMS": s3_endpoint}
    version = _publish(tmp_path, env, FILES, arn)
    envelope = json.loads(_get(s3_client, bucket, signature_key("models/", "m", version)))
    assert envelope["key"] == arn
    proc = _pull(tmp_path / "d", env, arn)
    assert proc.returncode == 0, proc.stderr
    assert tree(tmp_path / "d" / "m") == {**FILES, "model.sig": ANY}
    wrong = _pull(tmp_path / "d2", env, other)
    assert wrong.returncode == 1
    assert_one_line_error(wrong, "signature refused")
    pem = _pull(tmp_path / "d3", env, keys["good"][1])  # a PEM that is not the KMS key's
    assert pem.returncode == 1
    missing = _pull(tmp_path / "d4", env, arn.rsplit("/", 1)[0] + "/00000000-0000-0000-0000-000000000000")
    assert missing.returncode == 2
    assert_one_line_error(missing, "cannot get the public key of KMS key")


def test_kms_aliases_are_refused_as_trust_and_signing_keys(tmp_path, env, kms, s3_endpoint):
    """Reproduction: an alias/ trust key was accepted, and whoever may update the alias decides which key
    is trusted. Refused now, as trust key and as signing key, in both spellings, before any request."""
    suffix = tmp_path.name[-12:]
    arn = kms(f"alias/models-{suffix}")
    env = {**env, "AWS_ENDPOINT_URL_KMS": s3_endpoint}
    _publish(tmp_path, env, FILES, arn)
    alias_arn = arn.split(":key/")[0] + f":alias/models-{suffix}"
    for alias in (f"alias/models-{suffix}", alias_arn):
        pulled = _pull(tmp_path / "d", env, alias)
        assert pulled.returncode == 2
        assert_one_line_error(pulled, f"--trust-key / MODELSYNC_TRUST_KEY {alias} is a KMS alias", "use the key ARN",
                              "an alias can be re-pointed")
        assert not os.path.exists(tmp_path / "d")
        folder = write_model(tmp_path / "src-alias", FILES_2)
        published = run_cli("publish", folder, "--name", "m", "--signing-key", alias, env=env)
        assert published.returncode == 2
        assert_one_line_error(published, f"--signing-key / MODELSYNC_SIGNING_KEY {alias} is a KMS alias")


@pytest.mark.parametrize("how", ["variable", "flag"])
def test_an_empty_trust_key_is_an_error_not_no_checks(tmp_path, env, how):
    """Reproduction: MODELSYNC_TRUST_KEY set but empty (a template that lost its value) meant "check nothing":
    an unsigned version was pulled with exit 0."""
    _publish(tmp_path, env, FILES)  # unsigned
    dest = tmp_path / "d"
    if how == "variable":
        proc = _pull(dest, {**env, "MODELSYNC_TRUST_KEY": " "})
        assert_one_line_error(proc, "MODELSYNC_TRUST_KEY is set but empty", "to check no signatures")
    else:
        proc = _pull(dest, env, None, "--trust-key", "")
        assert_one_line_error(proc, "--trust-key is empty")
    assert proc.returncode == 2
    assert not os.path.exists(dest)
    assert _pull(dest, {**env, "MODELSYNC_TRUST_KEY": None}).returncode == 0  # unset: no checks, as documented


def test_url_with_a_trust_key_prints_nothing_for_an_unsigned_or_foreign_version(tmp_path, env, keys):
    """`url` hands out only what `pull --trust-key` would load (an unsigned or wrongly signed version:
    exit 1, one line, no URL printed)."""
    good, other = keys["good"], keys["other"]
    signed = _publish(tmp_path, env, {"a.bin": b"signed"}, key=good[0], name="u1")
    ok = run_cli("url", f"u1@{signed}", "--trust-key", good[1], env=env)
    assert ok.returncode == 0 and ok.stdout.count("\t") == 3, ok.stderr
    _publish(tmp_path, env, {"a.bin": b"unsigned"}, name="u2")
    for model, trust in (("u2", good[1]), ("u1", other[1])):
        refused = run_cli("url", model, "--trust-key", trust, env=env)
        assert refused.returncode == 1 and refused.stdout == ""
        assert refused.stderr.count("\n") == 1 and "signature refused" in refused.stderr
