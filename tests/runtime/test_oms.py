"""OMS bundles: every signed version carries one, every pulled version directory holds it as model.sig, and
the reference verifier (PyPI model-signing, its CLI) accepts it and refuses it after any byte changes."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import boto3
import pytest
from botocore.stub import Stubber
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils

from modelsync import keys, oms
from modelsync.keys import load_signer, load_verifier
from modelsync.manifest import FileEntry, Manifest, read_manifest

from .helpers import assert_one_line_error, make_keypair, model_files, run_cli, tree, write_model


def reference_verify(model_dir, public_key, *extra: str) -> subprocess.CompletedProcess:
    """`model_signing verify key MODEL --signature MODEL/model.sig --public_key PUB` (the reference CLI)."""
    return subprocess.run(
        [sys.executable, "-m", "model_signing", "verify", "key", str(model_dir), "--signature",
         os.path.join(model_dir, "model.sig"), "--public_key", str(public_key), *extra],
        capture_output=True, text=True, timeout=120,
    )


@pytest.fixture
def env(bucket):
    return {"MODELSYNC_BUCKET": bucket, "MODELSYNC_PART_SIZE_MIB": "1"}


def test_a_pulled_version_verifies_with_model_signing_and_fails_after_any_byte_changes(
        tmp_path, env, pem_keys, bucket, s3_client):
    key, pub = pem_keys
    files = model_files(seed=3)
    version = run_cli("publish", write_model(tmp_path / "src", files), "--name", "m", "--signing-key", key,
                      "--progress", "quiet", env=env, check=True).stdout.strip()
    bundle = s3_client.get_object(Bucket=bucket, Key=f"models/m/{version}/model.sig")["Body"].read()
    dest = tmp_path / "d"
    run_cli("pull", "--dest", dest, "--trust-key", pub, "--view", tmp_path / "view", "--progress", "quiet",
            env=env, check=True)
    assert (dest / "m" / "model.sig").read_bytes() == bundle
    assert tree(dest / "m") == {**files, "model.sig": bundle}
    version_dir = os.path.realpath(dest / "m")

    ok = reference_verify(version_dir, pub)
    assert ok.returncode == 0 and "Verification succeeded" in ok.stdout, ok.stderr
    through_link = reference_verify(dest / "m", pub, "--allow_symlinks")
    assert through_link.returncode == 0, through_link.stderr
    # <dest>/m is modelsync's symlink: the reference verifier refuses a model path that is one (hence the
    # realpath, or --allow_symlinks, in docs/runtime.md).
    assert "symlink" in reference_verify(dest / "m", pub).stderr
    # modelsync's own check of the same directory agrees.
    assert run_cli("verify", "--dest", dest, "--trust-key", pub, "--deep", env=env).returncode == 0

    for path, content in files.items():
        target = os.path.join(version_dir, path)
        changed = bytes([content[0] ^ 1]) + content[1:] if content else b"\0"
        os.chmod(target, 0o644)
        with open(target, "wb") as handle:
            handle.write(changed)
        refused = reference_verify(version_dir, pub)
        assert refused.returncode != 0 and "Verification failed" in refused.stderr, path
        assert path in refused.stderr
        with open(target, "wb") as handle:
            handle.write(content)
    assert reference_verify(version_dir, pub).returncode == 0


def _manifest_of(bucket, s3_endpoint, version) -> Manifest:
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    manifest = read_manifest(client, bucket, "m", version)
    assert manifest is not None
    return manifest


def _other_digest(manifest: Manifest) -> Manifest:
    first, *rest = manifest.files
    return Manifest(manifest.name, manifest.version, manifest.created, manifest.source,
                    [FileEntry(first.path, first.size, "0" * 64), *rest])


def _extra_file(manifest: Manifest) -> Manifest:
    return Manifest(manifest.name, manifest.version, manifest.created, manifest.source,
                    [*manifest.files, FileEntry("extra.bin", 1, "1" * 64)])


def _missing_file(manifest: Manifest) -> Manifest:
    return Manifest(manifest.name, manifest.version, manifest.created, manifest.source, manifest.files[1:])


@pytest.mark.parametrize(("change", "problem"), [
    (_other_digest, "signs another sha256 for"),
    (_extra_file, "signs 'extra.bin', which is not there"),
    (_missing_file, "does not sign"),
    (None, "does not verify with the trust key"),
], ids=["other-digest", "extra-file", "missing-file", "other-key"])
def test_a_bundle_that_does_not_match_the_manifest_is_refused(tmp_path, env, pem_keys, bucket, s3_client,
                                                              s3_endpoint, change, problem):
    """Signed by the trust key but listing other files than the manifest, or signed by another key: refused
    in one line before anything is downloaded, nothing switched."""
    key, pub = pem_keys
    version = run_cli("publish", write_model(tmp_path / "src", {"a.bin": b"a", "b.bin": b"b"}), "--name", "m",
                      "--signing-key", key, "--progress", "quiet", env=env, check=True).stdout.strip()
    manifest = _manifest_of(bucket, s3_endpoint, version)
    if change is None:
        other, _ = make_keypair(tmp_path / "other")
        forged = oms.make_bundle(load_signer(other), manifest)
        data = json.loads(forged)
        data["verificationMaterial"]["publicKey"]["hint"] = load_verifier(pub).hint  # claims the trusted key
        forged = json.dumps(data).encode()
    else:
        forged = oms.make_bundle(load_signer(key), change(manifest))
    s3_client.put_object(Bucket=bucket, Key=f"models/m/{version}/model.sig", Body=forged)
    dest = tmp_path / "d"
    proc = run_cli("pull", "--dest", dest, "--trust-key", pub, "--progress", "quiet", env=env)
    assert proc.returncode == 1
    assert_one_line_error(proc, "signature refused", f"models/m/{version}/model.sig", problem)
    assert not os.path.lexists(dest / "m")
    assert not os.listdir(dest / ".modelsync" / "versions")


def test_verify_checks_the_kept_bundle_and_pull_repairs_it(tmp_path, env, pem_keys, bucket, s3_client, s3_endpoint):
    key, pub = pem_keys
    run_cli("publish", write_model(tmp_path / "src", {"a.bin": b"a"}), "--name", "m", "--signing-key", key,
            "--progress", "quiet", env=env, check=True)
    dest = tmp_path / "d"
    run_cli("pull", "--dest", dest, "--trust-key", pub, "--progress", "quiet", env=env, check=True)
    assert run_cli("verify", "--dest", dest, env=env).returncode == 0  # model.sig is not "not in the manifest"
    bundle = dest / "m" / "model.sig"
    good = bundle.read_bytes()
    version = os.path.basename(os.path.realpath(dest / "m"))
    bundle.write_bytes(oms.make_bundle(load_signer(key), _missing_file(_extra_file(
        _manifest_of(bucket, s3_endpoint, version)))))
    proc = run_cli("verify", "--dest", dest, "--trust-key", pub, env=env)
    assert proc.returncode == 1 and "model.sig" in proc.stderr and "signature refused" in proc.stderr
    # A warm pull with the trust key puts the bucket's verified bundle back.
    run_cli("pull", "--dest", dest, "--trust-key", pub, "--progress", "quiet", env=env, check=True)
    assert bundle.read_bytes() == good
    assert run_cli("verify", "--dest", dest, "--trust-key", pub, env=env).returncode == 0


def test_a_kms_signed_bundle_verifies_with_model_signing(tmp_path, env, s3_endpoint, bucket):
    """The store's KMS key (moto's KMS on the test server): its public key, exported as PEM, verifies the
    pulled version with the reference verifier."""
    kms = boto3.client("kms", endpoint_url=s3_endpoint, region_name="us-east-1")
    arn = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["Arn"]
    pem = serialization.load_der_public_key(kms.get_public_key(KeyId=arn)["PublicKey"]).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    (tmp_path / "kms.pem").write_bytes(pem)
    env = {**env, "AWS_ENDPOINT_URL_KMS": s3_endpoint}
    run_cli("publish", write_model(tmp_path / "src", {"w.bin": os.urandom(3000), "c.json": b"{}"}), "--name", "m",
            "--signing-key", arn, "--progress", "quiet", env=env, check=True)
    dest = tmp_path / "d"
    run_cli("pull", "--dest", dest, "--trust-key", arn, "--progress", "quiet", env=env, check=True)
    ok = reference_verify(os.path.realpath(dest / "m"), tmp_path / "kms.pem")
    assert ok.returncode == 0, ok.stderr


def test_kms_signs_short_messages_raw_and_long_ones_as_their_digest(pem_keys, monkeypatch):
    """KMS Sign takes a RAW message of at most 4,096 bytes; a DSSE payload listing many files is longer, and
    is sent as its SHA-256 (MessageType DIGEST): the same ECDSA_SHA_256 signature. The requests are checked
    against botocore's model of the KMS API; the signatures come from a local key standing in for KMS."""
    private = serialization.load_pem_private_key(open(pem_keys[0], "rb").read(), password=None)
    client = boto3.client("kms", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")
    arn = "arn:aws:kms:eu-west-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    short, long = b"s" * 4096, b"l" * 4097
    digest = hashlib.sha256(long).digest()
    with Stubber(client) as stub:
        stub.add_response("sign", {"Signature": private.sign(short, ec.ECDSA(hashes.SHA256())), "KeyId": arn,
                                   "SigningAlgorithm": "ECDSA_SHA_256"},
                          {"KeyId": arn, "Message": short, "MessageType": "RAW", "SigningAlgorithm": "ECDSA_SHA_256"})
        stub.add_response("sign", {"Signature": private.sign(digest, ec.ECDSA(utils.Prehashed(hashes.SHA256()))),
                                   "KeyId": arn, "SigningAlgorithm": "ECDSA_SHA_256"},
                          {"KeyId": arn, "Message": digest, "MessageType": "DIGEST",
                           "SigningAlgorithm": "ECDSA_SHA_256"})
        monkeypatch.setattr(keys, "_kms_client", lambda ref: client)
        signer = keys.Signer(arn)
        verifier = load_verifier(pem_keys[1])
        assert verifier.valid(short, signer.sign(short))
        assert verifier.valid(long, signer.sign(long))
        stub.assert_no_pending_responses()


def test_a_many_file_bundle_is_longer_than_kms_takes_raw_and_still_verifies(tmp_path, pem_keys):
    """Why DIGEST matters: 60 files make a DSSE payload over 4,096 bytes; the bundle verifies all the same."""
    files = {f"shard-{i:03d}.bin": bytes([i]) * 10 for i in range(60)}
    folder = write_model(tmp_path / "many", files)
    manifest = Manifest("m", "v", "", {}, [FileEntry(p, len(c), hashlib.sha256(c).hexdigest())
                                          for p, c in files.items()])
    data = oms.make_bundle(load_signer(pem_keys[0]), manifest)
    payload = json.loads(data)["dsseEnvelope"]["payload"]
    assert len(payload) * 3 // 4 > keys.KMS_RAW_LIMIT
    (tmp_path / "many" / "model.sig").write_bytes(data)
    assert reference_verify(folder, pem_keys[1]).returncode == 0


def reference_sign(model_dir, private_key) -> None:
    subprocess.run([sys.executable, "-m", "model_signing", "sign", "key", str(model_dir), "--private_key",
                    str(private_key), "--signature", os.path.join(model_dir, "model.sig")],
                   check=True, capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def training_key(tmp_path_factory) -> tuple[str, str]:
    return make_keypair(tmp_path_factory.mktemp("training-key"))


def test_publish_verify_oms_accepts_a_folder_signed_at_training_time(tmp_path, env, pem_keys, training_key,
                                                                      s3_client, bucket):
    """A folder signed with `model_signing sign key` is checked, published without its model.sig as a file, and
    its version gets modelsync's own bundle (signing key) like any other."""
    key, pub = pem_keys
    files = {"weights.bin": os.urandom(5000), "sub/config.json": b"{}", "empty.txt": b""}
    folder = write_model(tmp_path / "trained", files)
    reference_sign(folder, training_key[0])
    proc = run_cli("publish", folder, "--name", "m", "--verify-oms", training_key[1], "--signing-key", key,
                   "--progress", "quiet", env=env)
    assert proc.returncode == 0, proc.stderr
    version = proc.stdout.strip()
    manifest = json.loads(s3_client.get_object(Bucket=bucket, Key=f"models/m/{version}/manifest.json")["Body"].read())
    assert sorted(f["path"] for f in manifest["files"]) == sorted(files)
    dest = tmp_path / "d"
    run_cli("pull", "--dest", dest, "--trust-key", pub, "--progress", "quiet", env=env, check=True)
    assert reference_verify(os.path.realpath(dest / "m"), pub).returncode == 0


@pytest.mark.parametrize(("change", "fragment"), [
    ("byte", "signs another sha256 for 'weights.bin'"),
    ("extra", "does not sign 'added.txt'"),
    ("removed", "signs 'sub/config.json', which is not there"),
    ("other-key", "it has a model.sig signed by another key than the trust key"),
    ("no-signature", "model.sig does not exist: sign the folder first"),
])
def test_publish_verify_oms_refuses_a_folder_that_is_not_what_was_signed(tmp_path, env, training_key, pem_keys,
                                                                         s3_client, bucket, change, fragment):
    folder = write_model(tmp_path / "trained", {"weights.bin": b"w" * 100, "sub/config.json": b"{}"})
    reference_sign(folder, pem_keys[0] if change == "other-key" else training_key[0])
    if change == "byte":
        (tmp_path / "trained" / "weights.bin").write_bytes(b"W" + b"w" * 99)
    elif change == "extra":
        (tmp_path / "trained" / "added.txt").write_bytes(b"new")
    elif change == "removed":
        os.unlink(tmp_path / "trained" / "sub" / "config.json")
    elif change == "no-signature":
        os.unlink(tmp_path / "trained" / "model.sig")
    proc = run_cli("publish", folder, "--name", "m", "--verify-oms", training_key[1], env=env)
    assert proc.returncode == 1
    assert_one_line_error(proc, fragment)
    assert "Contents" not in s3_client.list_objects_v2(Bucket=bucket)  # nothing uploaded


def test_a_model_sig_in_a_folder_is_refused_without_verify_oms(tmp_path, env, training_key, s3_client, bucket):
    folder = write_model(tmp_path / "trained", {"weights.bin": b"w"})
    reference_sign(folder, training_key[0])
    proc = run_cli("publish", folder, "--name", "m", env=env)
    assert proc.returncode == 2
    assert_one_line_error(proc, "model.sig is where modelsync keeps the version's OMS bundle", "--verify-oms PUBKEY")
    assert "Contents" not in s3_client.list_objects_v2(Bucket=bucket)
