"""The signing step on its own (issue 21, finding 3): a seed without the signing key only stages; `modelsync
sign`, which imports nothing of the seeding code, re-hashes what was staged, signs it, moves LATEST and
brings the EFS mirror up to date. Everything runs through the real CLI against the S3 test server."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys

import pytest

from tests.runtime.helpers import assert_one_line_error
from tests.seed.test_seed_flow import FAMILIES, RECORD, zenodo_entry
from tools.fake_zenodo import model_zip

MODELS = ("CLS_GMM_WS2", "CLS_GMM_WSe2")


@pytest.fixture
def env(s3_endpoint, bucket, zenodo, tmp_path, seed_keys):
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(FAMILIES + "".join(zenodo_entry(name, "gmm") for name in MODELS))
    for name in MODELS:
        zenodo.add(RECORD, f"{name}.zip", model_zip("gmm", name))
    return {**os.environ, "MODELSYNC_CATALOG": str(catalog), "MODELSYNC_BUCKET": bucket, "ZENODO_URL": zenodo.url,
            "TMPDIR": str(tmp_path), "MODELSYNC_TRUST_KEY": seed_keys[1]}


def modelsync(*args, env, extra=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "modelsync", *map(str, args)],
                          env={**env, **(extra or {})}, capture_output=True, text=True, timeout=120)


def objects(s3_client, bucket) -> dict[str, str]:
    pages = s3_client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return {o["Key"]: o["ETag"] for page in pages for o in page.get("Contents", [])}


def shapes(keys) -> set[str]:
    """Keys with the model name and version replaced: what kind of object each step writes."""
    found = set()
    for key in keys:
        parts = key.split("/")
        parts[1] = "<name>"
        if len(parts) > 3:
            parts[2] = "<version>"
        if len(parts) > 4 and parts[3] == "files":
            parts[4:] = ["<path>"]
        found.add("/".join(parts))
    return found


def test_seed_without_the_key_stages_and_sign_publishes_and_mirrors(env, s3_client, bucket, tmp_path, seed_keys):
    key, pub = seed_keys
    # The seed needs no KMS at all: an unreachable KMS endpoint changes nothing.
    staged = modelsync("seed", env=env, extra={"AWS_ENDPOINT_URL_KMS": "http://127.0.0.1:9"})
    assert staged.returncode == 0, staged.stderr
    assert "seed: 0 published, 0 unchanged, 0 failed, 2 staged for modelsync sign" in staged.stdout
    after_seed = objects(s3_client, bucket)
    assert shapes(after_seed) == {"models/<name>/<version>/files/<path>", "models/<name>/<version>/manifest.json",
                                  "models/<name>/STAGED"}
    # Staged is not published: a reader finds nothing yet.
    assert modelsync("pull", "--dest", tmp_path / "app", "--trust-key", pub, env=env).returncode == 1

    efs = tmp_path / "efs"
    signed = modelsync("sign", "--signing-key", key, "--efs-root", efs, env=env)
    assert signed.returncode == 0, signed.stdout + signed.stderr
    rows = {line.split()[0]: line.split()[1] for line in signed.stdout.splitlines()[1:3]}
    assert rows == {name: "signed" for name in MODELS}
    assert f"EFS mirror {efs}: ok" in signed.stdout and "sign: 2 signed, 0 refused, 0 failed" in signed.stdout
    after_sign = objects(s3_client, bucket)
    written = {k for k in after_sign if after_seed.get(k) != after_sign[k]}
    assert shapes(written) == {"models/<name>/LATEST", "models/<name>/<version>/manifest.json.sig",
                               "models/<name>/<version>/model.sig"}
    assert shapes(set(after_seed) - set(after_sign)) == {"models/<name>/STAGED"}  # the pointers are gone
    for name in MODELS:
        statement = json.loads(s3_client.get_object(Bucket=bucket, Key=f"models/{name}/LATEST")["Body"].read())
        assert json.loads(base64.b64decode(statement["statement"]["payload"]))["predicate"]["sequence"] == 1
        assert (efs / name / "model.sig").is_file()
    assert modelsync("verify", "--dest", efs, "--trust-key", pub, "--bucket", bucket, env=env).returncode == 0

    again = modelsync("seed", env=env)
    assert "seed: 0 published, 2 unchanged, 0 failed" in again.stdout and again.returncode == 0
    nothing = modelsync("sign", "--signing-key", key, "--efs-root", efs, env=env)
    assert nothing.returncode == 0 and nothing.stdout.startswith("nothing staged"), nothing.stdout
    assert f"EFS mirror {efs}: ok, 0 files (0 B) copied" in nothing.stdout


def test_the_signing_step_imports_nothing_of_the_seeding_code(env, s3_client, bucket, tmp_path, seed_keys):
    assert modelsync("seed", "--only", MODELS[0], env=env).returncode == 0
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "modelsync", "sign", "--signing-key",
                           seed_keys[0], "--efs-root", tmp_path / "efs"], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    imported = {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert "modelsync.sign" in imported and "modelsync.mirror" in imported
    # modelsync.seed holds the archive extraction, the Zenodo and https downloads and the PaddleX prewarm
    # (the stdlib's zipfile is imported anyway, by importlib.metadata).
    assert not {m for m in imported if m.startswith(("modelsync.seed", "paddle", "yaml"))}


@pytest.mark.parametrize(("change", "fragment"), [
    ("same-size", "has sha256"),
    ("extra", "files/added.bin is not in the manifest"),
    ("missing", "files/contrast_dict.json is missing"),
    ("manifest", "lists other files than its version names"),
])
def test_sign_re_hashes_and_refuses_what_does_not_match_the_manifest(env, s3_client, bucket, tmp_path, seed_keys,
                                                                      change, fragment):
    """What the signer signs is what it read back, not what the seed says: bytes changed after staging (a
    seeder that stages bytes of its choosing under a manifest that says otherwise) are refused."""
    assert modelsync("seed", "--only", MODELS[0], env=env).returncode == 0
    name = MODELS[0]
    version = json.loads(s3_client.get_object(Bucket=bucket, Key=f"models/{name}/STAGED")["Body"].read())["version"]
    files = f"models/{name}/{version}/files/"
    if change == "same-size":
        original = s3_client.get_object(Bucket=bucket, Key=files + "contrast_dict.json")["Body"].read()
        s3_client.put_object(Bucket=bucket, Key=files + "contrast_dict.json", Body=bytes([original[0] ^ 1]) + original[1:])
    elif change == "extra":
        s3_client.put_object(Bucket=bucket, Key=files + "added.bin", Body=b"x")
    elif change == "missing":
        s3_client.delete_object(Bucket=bucket, Key=files + "contrast_dict.json")
    else:
        key = f"models/{name}/{version}/manifest.json"
        manifest = json.loads(s3_client.get_object(Bucket=bucket, Key=key)["Body"].read())
        manifest["files"][0]["sha256"] = "0" * 64
        s3_client.put_object(Bucket=bucket, Key=key, Body=json.dumps(manifest).encode())
    before = objects(s3_client, bucket)
    proc = modelsync("sign", "--signing-key", seed_keys[0], env=env)
    assert proc.returncode == 1
    failed = [line for line in proc.stdout.splitlines() if line.startswith("FAILED")]
    assert len(failed) == 1 and failed[0].startswith(f"FAILED {name}: ") and fragment in failed[0], proc.stdout
    assert "sign: 0 signed, 1 refused, 0 failed" in proc.stdout
    assert objects(s3_client, bucket) == before  # no signature, no LATEST, the pointer still there


def test_a_seed_without_the_key_refuses_an_efs_root(env, tmp_path):
    proc = modelsync("seed", "--efs-root", tmp_path / "efs", env=env)
    assert_one_line_error(proc, "a seed without --signing-key / MODELSYNC_SIGNING_KEY only stages models",
                          "modelsync sign")
    assert proc.returncode == 2
    signless = modelsync("sign", env=env)
    assert_one_line_error(signless, "modelsync sign needs --signing-key / MODELSYNC_SIGNING_KEY")


def test_a_staged_version_does_not_disturb_readers_and_sign_continues_the_sequence(env, s3_client, bucket, tmp_path,
                                                                                   seed_keys, zenodo):
    """A new version staged while LATEST is signed: readers keep the signed one until sign moves LATEST,
    with the next sequence after the highest in LATEST's history (a LATEST put back from before does not
    make it start lower)."""
    key, pub = seed_keys
    s3_client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    only = {"MODELSYNC_SEED_ONLY": MODELS[0]}
    assert modelsync("seed", "--signing-key", key, env=env, extra=only).returncode == 0  # one step: v1, sequence 1
    v1_latest = s3_client.get_object(Bucket=bucket, Key=f"models/{MODELS[0]}/LATEST")["Body"].read()
    zenodo.reset()
    zenodo.add(RECORD, f"{MODELS[0]}.zip", _other_gmm_zip())
    assert "1 staged" in modelsync("seed", env=env, extra=only).stdout
    app = tmp_path / "app"
    assert modelsync("pull", "--dest", app, "--trust-key", pub, env=env).returncode == 0
    v1 = os.path.basename(os.readlink(app / MODELS[0]))
    signed = modelsync("sign", "--signing-key", key, env=env)
    assert signed.returncode == 0, signed.stdout
    assert modelsync("pull", "--dest", app, "--trust-key", pub, env=env).returncode == 0
    assert os.path.basename(os.readlink(app / MODELS[0])) != v1
    latest = json.loads(s3_client.get_object(Bucket=bucket, Key=f"models/{MODELS[0]}/LATEST")["Body"].read())
    assert json.loads(base64.b64decode(latest["statement"]["payload"]))["predicate"]["sequence"] == 2
    # Someone puts v1's LATEST back, a seed stages again, sign continues above the history's highest.
    s3_client.put_object(Bucket=bucket, Key=f"models/{MODELS[0]}/LATEST", Body=v1_latest)
    zenodo.reset()
    zenodo.add(RECORD, f"{MODELS[0]}.zip", _other_gmm_zip(b"third"))
    assert "1 staged" in modelsync("seed", env=env, extra=only).stdout
    assert modelsync("sign", "--signing-key", key, env=env).returncode == 0
    latest = json.loads(s3_client.get_object(Bucket=bucket, Key=f"models/{MODELS[0]}/LATEST")["Body"].read())
    assert json.loads(base64.b64decode(latest["statement"]["payload"]))["predicate"]["sequence"] == 3
    assert modelsync("pull", "--dest", app, "--trust-key", pub, env=env).returncode == 0


def _other_gmm_zip(marker: bytes = b"second") -> bytes:
    from tools.fake_zenodo import make_zip

    return make_zip({"contrast_dict.json": b'{"version": "' + marker + b'"}'})
