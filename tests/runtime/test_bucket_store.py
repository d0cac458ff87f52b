"""The bucket store (S3 Files mode): `verify --store bucket` over a real directory tree laid out exactly as the
bucket, made by publishing (signed) to the moto server and copying the bucket out with the AWS CLI
(`aws s3 sync`, from .venv-awscli: a tool that shares no code with modelsync), then the real CLI in
subprocesses: the views the apps read, every refusal (one line, exit 1, the existing view unchanged), files
that appear late, and the switches' bad values."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from modelsync import freshness
from modelsync.bucket_verify import verify_bucket
from modelsync.keys import load_signer, load_verifier
from modelsync.manifest import read_manifest
from modelsync.publish import put_latest
from modelsync.serve import ReadinessCache
from modelsync.signing import make_envelope, manifest_digest

from tests.consumers import maskterial_check_available_models, maskterial_construct_model_path
from tests.emf_check import dimension_sets, records, values
from tools.fake_zenodo import FAMILY_FILES

from .helpers import assert_one_line_error, make_keypair, model_files, run_cli
from .test_view import MASKTERIAL, PADDLE_FILES, snapshot

AWS = Path(__file__).resolve().parents[2] / ".venv-awscli" / "bin" / "aws"
META = ".modelsync-view"


def copy_bucket_out(bucket: str, tree: Path) -> Path:
    """The bucket's models/ prefix as a directory tree, the way S3 Files lays it out: key = path."""
    assert AWS.exists(), f"{AWS} is missing: run `make install-awscli` (`make test` does)"
    proc = subprocess.run([str(AWS), "s3", "sync", f"s3://{bucket}/models/", str(tree), "--only-show-errors",
                           "--endpoint-url", os.environ["AWS_ENDPOINT_URL_S3"]],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return tree


@pytest.fixture
def signer(pem_keys):
    return load_signer(pem_keys[0])


def init_env(bucket, pem_keys, tree, view=None, layout=None, models=None, **more) -> dict:
    """What the s3files-mode init container sets (docs/contracts.md)."""
    env = {"MODELSYNC_STORE": "bucket", "MODELSYNC_DEST": str(tree), "MODELSYNC_TRUST_KEY": pem_keys[1],
           "MODELSYNC_BUCKET": f"s3://{bucket}/models", "MODELSYNC_MODELS": models,
           "MODELSYNC_VIEW": str(view) if view else None, "MODELSYNC_LAYOUT": layout}
    env.update(more)
    return env


def view_summary(proc) -> dict:
    [found] = [json.loads(line) for line in proc.stdout.splitlines() if '"action": "view"' in line]
    return found


def one_problem(proc, *fragments: str) -> str:
    """exit 1, exactly one problem line on stderr (EMF records aside), naming the fragments; no traceback."""
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip() and not line.startswith("{")]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def files_of(tree: Path, name: str, version: str) -> Path:
    return tree / name / version / "files"


# -- what the apps see ------------------------------------------------------------------------------------------


def test_maskterial_finds_every_model_in_a_view_of_links_to_exactly_the_manifest_files(
        bucket, publish, signer, pem_keys, tmp_path):
    versions = {name: publish(name, FAMILY_FILES[family], signer=signer) for name, family in MASKTERIAL.items()}
    tree = copy_bucket_out(bucket, tmp_path / "mnt" / "models")
    data_models = tmp_path / "maskterial" / "data" / "models"
    env = init_env(bucket, pem_keys, tree, data_models, "maskterial", ",".join(MASKTERIAL),
                   MODELSYNC_METRICS_NAMESPACE="ModelDelivery", MODELSYNC_STAGE="dev",
                   MODELSYNC_DELIVERY_MODE="s3files")
    proc = run_cli("verify", env=env)  # the init container: everything from its environment
    assert proc.returncode == 0, proc.stderr

    seg, cls, pp = (os.fspath(data_models / d) for d in
                    ("segmentation_models", "classification_models", "postprocessing_models"))
    assert maskterial_check_available_models(seg) == ["M2F-GrapheneL", "M2F-Synthetic_Data", "M2F-hBN_Thin"]
    assert maskterial_check_available_models(cls) == ["AMM-GrapheneL", "AMM-hBN_Thin", "GMM-GrapheneL"]
    assert maskterial_check_available_models(pp) == ["L2-material_agnostic"]
    for category in (seg, cls, pp):
        for model in maskterial_check_available_models(category):
            folder = maskterial_construct_model_path(category, model)
            assert not os.path.islink(folder) and os.path.realpath(folder).startswith(str(data_models / META))
    pretrained = data_models / "segmentation_models" / "M2F" / "Synthetic_Data" / "model_final.pth"
    assert pretrained.read_bytes() == FAMILY_FILES["m2f"]["model_final.pth"]

    # One link per file of each manifest, into the mount, and nothing else.
    links = view_summary(proc)["links"]
    expected = {}
    for name, version in versions.items():
        for path in FAMILY_FILES[MASKTERIAL[name]]:
            expected[path] = expected.get(path, 0) + 1
    assert len(links) == sum(len(FAMILY_FILES[f]) for f in MASKTERIAL.values())
    for view_path, target in links.items():
        name = next(n for n, v in versions.items() if target.startswith(f"{tree}/{n}/{v}/files/"))
        assert (data_models / view_path).read_bytes() == Path(target).read_bytes()
        assert os.readlink(data_models / META / "current" / view_path) == target
        assert target[len(f"{tree}/{name}/{versions[name]}/files/"):] in FAMILY_FILES[MASKTERIAL[name]]

    # The mount is live: an object that appears later in a version's files/ does not appear in the view.
    (files_of(tree, "SEG_M2F_GrapheneL", versions["SEG_M2F_GrapheneL"]) / "late.pth").write_bytes(b"x")
    assert not (data_models / "segmentation_models" / "M2F" / "GrapheneL" / "late.pth").exists()

    [record] = [r for r in records(proc.stderr) if r["job"] == "verify"]
    assert dimension_sets(record) == [{"Stage": "dev", "DeliveryMode": "s3files"}]
    assert values(record) == {"VerifyModels": (7, "Count"), "VerifyFailures": (0, "Count")}


def test_flat_and_paddlex_layouts_work_on_the_bucket_store(bucket, publish, signer, pem_keys, tmp_path):
    alpha = publish("alpha", model_files(seed=1), signer=signer)
    publish("paddleocr", PADDLE_FILES, signer=signer)
    tree = copy_bucket_out(bucket, tmp_path / "mnt")
    flat, cache = tmp_path / "flat", tmp_path / "paddlex"
    proc = run_cli("verify", "--view", flat, env=init_env(bucket, pem_keys, tree, models="alpha"))
    assert proc.returncode == 0, proc.stderr
    assert view_summary(proc)["app_environment"] == {"MODEL_PATH": str(flat)}
    for path, content in model_files(seed=1).items():
        assert (flat / "alpha" / path).read_bytes() == content
        assert os.readlink(flat / META / "current" / "alpha" / path) == f"{files_of(tree, 'alpha', alpha)}/{path}"

    proc = run_cli("view", cache, "--store", "bucket", "--dest", tree, "--layout", "paddlex", "--model", "paddleocr")
    assert proc.returncode == 0, proc.stderr
    assert sorted(os.listdir(cache / "official_models")) == ["PP-OCRv6_medium_det", "PP-OCRv6_medium_rec"]
    assert (cache / "official_models" / "PP-OCRv6_medium_det" / "inference.pdiparams").read_bytes() == b"\x00" * 4096
    (cache / "temp").mkdir()  # PaddleX writes its cache home


# -- refusals: one line, exit 1, the view as it was -------------------------------------------------------------


def _missing(tree, name, v1, v2, ctx):
    (files_of(tree, name, v2) / "config.yaml").unlink()
    return ["is missing", f"{files_of(tree, name, v2)}/config.yaml", "--wait-for-files"]


def _wrong_size(tree, name, v1, v2, ctx):
    with open(files_of(tree, name, v2) / "sub" / "dir" / "weights.npy", "ab") as handle:
        handle.write(b"more")
    return ["weights.npy has 5004 bytes, the manifest says 5000"]


def _extra(tree, name, v1, v2, ctx):
    (files_of(tree, name, v2) / "sub" / "added.bin").write_bytes(b"not published")
    return [f"{files_of(tree, name, v2)}/sub/added.bin is not in the manifest"]


def _other_key(tree, name, v1, v2, ctx):
    manifest = read_manifest(ctx["client"], ctx["bucket"], name, v2)
    other = load_signer(make_keypair(ctx["tmp_path"] / "other")[0])
    envelope = make_envelope(other, "manifest", name, v2, manifest_digest(manifest))
    (tree / name / v2 / "manifest.json.sig").write_text(json.dumps(envelope))
    return ["signature refused", f"{tree}/{name}/{v2}/manifest.json has a signature that does not verify"]


def _latest_elsewhere(tree, name, v1, v2, ctx):
    latest = json.loads((tree / name / "LATEST").read_text())
    (tree / name / "LATEST").write_text(json.dumps({**latest, "version": v1}))
    return ["signature refused", f"{tree}/{name}/LATEST (-> {v1})", f"a LATEST statement for {name}@{v2}"]


def _latest_replayed(tree, name, v1, v2, ctx):
    (tree / name / "LATEST").write_bytes(ctx["old_latest"])  # validly signed, for v1, in 2020
    return ["LATEST refused", f"names {name}@{v1}", "more than the maximum age 7d"]


def _latest_of_another_bucket(tree, name, v1, v2, ctx):
    (tree / name / "LATEST").write_bytes(ctx["other_latest"])
    return ["LATEST refused", "for the repository s3://", f"not s3://{ctx['bucket']}/models/"]


def _link_out(tree, name, v1, v2, ctx):
    outside = ctx["tmp_path"] / "outside.yaml"
    target = files_of(tree, name, v2) / "config.yaml"
    outside.write_bytes(target.read_bytes())
    target.unlink()
    target.symlink_to(outside)
    return ["config.yaml is a symbolic link, which modelsync never follows"]


@pytest.mark.parametrize("damage", [_missing, _wrong_size, _extra, _other_key, _latest_elsewhere, _latest_replayed,
                                    _latest_of_another_bucket, _link_out],
                         ids=lambda f: f.__name__.strip("_"))
def test_a_refusal_is_one_line_exit_1_and_leaves_the_view_as_it_was(
        client, s3_client, bucket, publish, signer, pem_keys, tmp_path, monkeypatch, damage):
    v1 = publish("m", model_files(seed=1), signer=signer)
    manifest_v1 = read_manifest(client, bucket, "m", v1)

    class In2020(datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime(2020, 1, 1, tzinfo=UTC)

    with monkeypatch.context() as patch:  # a LATEST for v1 signed in 2020, kept by someone to put back later
        patch.setattr(freshness, "datetime", In2020)
        put_latest(client, bucket, "models/", manifest_v1, signer)
    old_latest = s3_client.get_object(Bucket=bucket, Key="models/m/LATEST")["Body"].read()
    v2 = publish("m", model_files(seed=2), signer=signer)
    other = bucket + "-other"
    s3_client.create_bucket(Bucket=other)
    put_latest(client, other, "models/", read_manifest(client, bucket, "m", v2), signer)
    other_latest = s3_client.get_object(Bucket=other, Key="models/m/LATEST")["Body"].read()

    tree = copy_bucket_out(bucket, tmp_path / "mnt")
    view = tmp_path / "view"
    env = init_env(bucket, pem_keys, tree, view, models="m", MODELSYNC_MAX_LATEST_AGE="7d")
    assert run_cli("verify", env=env).returncode == 0  # the view of the task before
    before = snapshot(view)
    ctx = {"client": client, "bucket": bucket, "tmp_path": tmp_path, "old_latest": old_latest,
           "other_latest": other_latest}
    fragments = damage(tree, "m", v1, v2, ctx)
    one_problem(run_cli("verify", env=env), *fragments)
    assert snapshot(view) == before


def test_without_a_trust_key_a_tampered_manifest_signature_is_not_checked_but_sizes_are(
        bucket, publish, signer, pem_keys, tmp_path):
    """The trust key is what makes signatures count: the test above fails for the right reason."""
    v = publish("m", model_files(seed=1), signer=signer)
    tree = copy_bucket_out(bucket, tmp_path / "mnt")
    (tree / "m" / v / "manifest.json.sig").write_text("{}")
    env = init_env(bucket, pem_keys, tree, models="m", MODELSYNC_TRUST_KEY=None)
    assert run_cli("verify", env=env).returncode == 0
    assert run_cli("verify", env={**env, "MODELSYNC_TRUST_KEY": pem_keys[1]}).returncode == 1


def test_deep_checks_every_byte(bucket, publish, signer, pem_keys, tmp_path):
    v = publish("m", model_files(seed=1), signer=signer)
    tree = copy_bucket_out(bucket, tmp_path / "mnt")
    target = files_of(tree, "m", v) / "model.pth"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, one byte off
    target.write_bytes(bytes(data))
    env = init_env(bucket, pem_keys, tree, models="m")
    assert run_cli("verify", env=env).returncode == 0  # sizes only
    one_problem(run_cli("verify", env={**env, "MODELSYNC_DEEP": "true"}),
                f"{target}: sha256", "does not match the manifest")
    one_problem(run_cli("verify", "--deep", env=env), "does not match the manifest")
    assert run_cli("verify", env={**env, "MODELSYNC_DEEP": "false"}).returncode == 0


# -- files that arrive late ---------------------------------------------------------------------------------------


def test_files_that_appear_while_verify_waits_are_verified_and_viewed(bucket, publish, signer, pem_keys, tmp_path):
    v = publish("m", model_files(seed=1), signer=signer)
    tree = copy_bucket_out(bucket, tmp_path / "mnt")
    hidden = tmp_path / "not-yet"
    shutil.move(files_of(tree, "m", v), hidden)  # LATEST and the manifest are visible, the files not yet
    (tree / "m" / v / "manifest.json").rename(tmp_path / "manifest.json")
    view = tmp_path / "view"

    def arrive():
        time.sleep(1.5)
        (tmp_path / "manifest.json").rename(tree / "m" / v / "manifest.json")
        time.sleep(1.0)
        shutil.move(hidden, files_of(tree, "m", v))

    mover = threading.Thread(target=arrive)
    started = time.monotonic()
    mover.start()
    proc = run_cli("verify", env=init_env(bucket, pem_keys, tree, view, models="m", MODELSYNC_WAIT_FOR_FILES="60s"))
    mover.join()
    assert proc.returncode == 0, proc.stderr
    assert time.monotonic() - started >= 2.5
    assert (view / "m" / "model.pth").read_bytes() == model_files(seed=1)["model.pth"]


def test_files_that_never_appear_fail_in_one_line_after_the_wait(bucket, publish, signer, pem_keys, tmp_path):
    v = publish("m", model_files(seed=1), signer=signer)
    tree = copy_bucket_out(bucket, tmp_path / "mnt")
    (files_of(tree, "m", v) / "config.yaml").unlink()
    (files_of(tree, "m", v) / "empty.txt").unlink()
    view = tmp_path / "view"
    started = time.monotonic()
    proc = run_cli("verify", env=init_env(bucket, pem_keys, tree, view, models="m", MODELSYNC_WAIT_FOR_FILES="2"))
    assert 2 <= time.monotonic() - started < 30
    one_problem(proc, f"m@{v}: {files_of(tree, 'm', v)}/config.yaml is missing (and 1 more) after waiting 2s",
                "raise --wait-for-files / MODELSYNC_WAIT_FOR_FILES", "check that the seed or publish")
    assert not view.exists()


class FakeClock:
    def __init__(self, on_sleep=None):
        self.now, self.sleeps, self.on_sleep = 0.0, [], on_sleep

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        if self.on_sleep:
            self.on_sleep(len(self.sleeps))


def test_the_wait_polls_with_backoff_until_the_files_are_there_or_the_time_is_up(
        bucket, publish, signer, pem_keys, tmp_path):
    v = publish("m", model_files(seed=1), signer=signer)
    tree = copy_bucket_out(bucket, tmp_path / "mnt")
    target = files_of(tree, "m", v) / "config.yaml"
    content = target.read_bytes()
    target.unlink()
    trust = load_verifier(pem_keys[1])

    clock = FakeClock(on_sleep=lambda count: count == 4 and target.write_bytes(content))
    [state] = verify_bucket(tree, ["m"], trust=trust, wait=90, sleep=clock.sleep, clock=clock)
    assert state.problems == [] and state.version == v and len(clock.sleeps) == 4
    assert all(0 < s <= 5 for s in clock.sleeps) and clock.sleeps[0] <= 0.5 < max(clock.sleeps)  # backoff

    target.unlink()
    clock = FakeClock()
    [state] = verify_bucket(tree, ["m"], trust=trust, wait=90, sleep=clock.sleep, clock=clock)
    assert clock.now == 90 and len(state.problems) == 1
    assert f"{target} is missing after waiting 1.5m" in state.problems[0]


def test_a_latest_that_moves_while_it_is_checked_is_followed_on_the_next_poll(
        bucket, publish, signer, pem_keys, tmp_path, monkeypatch):
    import modelsync.bucket_verify

    publish("m", model_files(seed=1), signer=signer)
    tree = copy_bucket_out(bucket, tmp_path / "mnt")
    first_latest = (tree / "m" / "LATEST").read_bytes()
    v2 = publish("m", model_files(seed=2), signer=signer)
    tree = copy_bucket_out(bucket, tree)
    (tree / "m" / "LATEST").write_bytes(first_latest)  # the mount still shows the LATEST before
    real, calls = modelsync.bucket_verify.check_pull_targets, []

    def moves_meanwhile(*args, **kwargs):  # S3 Files shows the new LATEST between the two reads of it
        calls.append(1)
        if len(calls) == 1:
            copy_bucket_out(bucket, tree)
        return real(*args, **kwargs)

    monkeypatch.setattr(modelsync.bucket_verify, "check_pull_targets", moves_meanwhile)
    clock = FakeClock()
    [state] = verify_bucket(tree, ["m"], trust=load_verifier(pem_keys[1]), wait=30, sleep=clock.sleep, clock=clock)
    assert state.problems == [] and state.version == v2 and len(calls) == 2 and len(clock.sleeps) == 1


def test_a_bad_signature_or_a_wrong_sha256_is_never_waited_on(bucket, publish, signer, pem_keys, tmp_path):
    v = publish("m", model_files(seed=1), signer=signer)
    tree = copy_bucket_out(bucket, tmp_path / "mnt")
    trust = load_verifier(pem_keys[1])

    def no_sleep(seconds):
        raise AssertionError("waited")

    missing = files_of(tree, "m", v) / "config.yaml"
    missing.unlink()  # late, but a present problem ends the wait at once
    (tree / "m" / v / "manifest.json.sig").write_text("{}")
    [state] = verify_bucket(tree, ["m"], trust=trust, wait=600, sleep=no_sleep)
    assert len(state.problems) == 1 and "signature refused" in state.problems[0]

    tree2 = copy_bucket_out(bucket, tmp_path / "mnt2")
    (files_of(tree2, "m", v) / "config.yaml").write_bytes(b"seed: 9\n")  # same size, other bytes
    [state] = verify_bucket(tree2, ["m"], trust=trust, deep=True, wait=600, sleep=no_sleep)
    assert len(state.problems) == 1 and "does not match the manifest" in state.problems[0]


# -- serve, and bad settings ----------------------------------------------------------------------------------


def test_serve_readiness_checks_the_bucket_tree(bucket, publish, signer, tmp_path):
    v = publish("m", model_files(seed=1), signer=signer)
    tree = copy_bucket_out(bucket, tmp_path / "mnt")
    logged = []
    assert ReadinessCache(str(tree), ["m"], logged.append, store="bucket").problems() == []
    (files_of(tree, "m", v) / "config.yaml").unlink()
    assert ReadinessCache(str(tree), ["m"], logged.append, store="bucket").problems() == ["m: files-differ"]
    assert ReadinessCache(str(tree), ["m"], logged.append, store="local").problems() == ["m: not-installed"]


@pytest.mark.parametrize("args, env, fragment", [
    ((), {"MODELSYNC_STORE": "s3files"}, "MODELSYNC_STORE='s3files' is not a store: use local or bucket"),
    (("--store", "nfs"), {}, "--store nfs is not a store"),
    ((), {"MODELSYNC_STORE": "bucket", "MODELSYNC_WAIT_FOR_FILES": "soon"}, "MODELSYNC_WAIT_FOR_FILES='soon' is not"),
    ((), {"MODELSYNC_DEEP": "maybe"}, "MODELSYNC_DEEP='maybe' is not true or false"),
    (("--wait-for-files", "90s"), {}, "--wait-for-files / MODELSYNC_WAIT_FOR_FILES needs --store bucket"),
], ids=["store-env", "store-flag", "wait", "deep", "wait-local"])
def test_bad_settings_are_one_line_exit_2(tmp_path, args, env, fragment):
    proc = run_cli("verify", "--dest", tmp_path, *args, env=env)
    assert proc.returncode == 2
    assert_one_line_error(proc, fragment)
