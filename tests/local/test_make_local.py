"""`make local` (python -m tools.local) run headless in a subprocess, exactly as a user runs it:
real moto S3 and local Zenodo servers on 127.0.0.1, real `modelsync` subprocesses, real files.

Each test runs the driver on its own state directory with free ports (port 0)."""

from __future__ import annotations

import json
import os
import queue
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import boto3
import pytest

REPO = Path(__file__).resolve().parents[2]
READY_LINE = "== make local is ready"
TIMEOUT_S = 60


def driver_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MODELSYNC_", "ZENODO_"))}
    env["AWS_CONFIG_FILE"] = env["AWS_SHARED_CREDENTIALS_FILE"] = str(tmp_path / "no-aws-config")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def driver(root: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "tools.local", "--root", str(root), "--s3-port", "0", "--port", "0", *extra]


def run_until_exit(root: Path, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(driver(root, *extra), cwd=REPO, env=driver_env(tmp_path), capture_output=True,
                          text=True, timeout=TIMEOUT_S)


def env_file(root: Path) -> dict[str, str]:
    """The variables env.sh exports (what a user gets with `source .local/env.sh`)."""
    values = {}
    for line in (root / "env.sh").read_text().splitlines():
        if line.startswith("export "):
            name, _, value = line[len("export "):].partition("=")
            values[name] = shlex.split(value)[0] if name != "PATH" else value
    return values


def user_shell_env(root: Path, tmp_path: Path) -> dict[str, str]:
    env = driver_env(tmp_path)
    env.update({k: v for k, v in env_file(root).items() if k != "PATH"})
    return env


def default_models() -> list[str]:
    from modelsync.seed.catalog import ZenodoSource, load_catalog

    return [e.name for e in load_catalog().select() if isinstance(e.source, ZenodoSource)]


def get_json(url: str):
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status, json.load(response)


def port_is_closed(url: str) -> bool:
    host, port = url.rsplit("//", 1)[1].split(":")
    with socket.socket() as sock:
        sock.settimeout(2)
        return sock.connect_ex((host, int(port))) != 0


class RunningDriver:
    """The driver in the background; stdout lines are collected so the test can wait for 'ready'."""

    def __init__(self, root: Path, tmp_path: Path):
        self.proc = subprocess.Popen(driver(root), cwd=REPO, env=driver_env(tmp_path), text=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        threading.Thread(target=self._pump, args=(self.proc.stdout, self.stdout, True), daemon=True).start()
        threading.Thread(target=self._pump, args=(self.proc.stderr, self.stderr, False), daemon=True).start()

    def _pump(self, stream, sink: list[str], signal_lines: bool) -> None:
        for line in stream:
            sink.append(line)
            if signal_lines:
                self.lines.put(line)
        if signal_lines:
            self.lines.put(None)

    def wait_ready(self) -> list[str]:
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=1)
            except queue.Empty:
                continue
            if line is None:
                break
            if line.startswith(READY_LINE):
                time.sleep(0.3)  # let the rest of the banner arrive
                return self.stdout
        self.stop()
        pytest.fail(f"make local never got ready:\n{''.join(self.stdout)}\n{''.join(self.stderr)}")

    def stop(self, sig=signal.SIGKILL) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=30)


def banner_url(stdout: list[str], label: str) -> str:
    for line in stdout:
        match = re.match(rf"\s+{label}\s+(http://127\.0\.0\.1:\d+)", line)
        if match:
            return match.group(1)
    raise AssertionError(f"no {label} URL in the banner:\n{''.join(stdout)}")


def test_serves_verified_models_and_ctrl_c_stops_everything(tmp_path):
    root = tmp_path / "state"
    running = RunningDriver(root, tmp_path)
    try:
        stdout = running.wait_ready()
        app_url, s3_url = banner_url(stdout, "app"), banner_url(stdout, r"S3 \(moto\)")
        expected = default_models()
        assert expected, "the bundled catalog enables no Zenodo model"

        status, models = get_json(f"{app_url}/models")
        assert status == 200
        assert [m["name"] for m in models] == expected
        assert all(m["ok"] and m["files"] > 0 for m in models), models
        assert get_json(f"{app_url}/readyz") == (200, {"ready": True, "problems": []})

        # What the app serves is what the bucket's LATEST says, read straight from the S3 server.
        env = env_file(root)
        assert env["AWS_ENDPOINT_URL_S3"] == s3_url
        s3 = boto3.client("s3", endpoint_url=s3_url, region_name="us-east-1",
                          aws_access_key_id="local", aws_secret_access_key="local")
        for model in models:
            latest = json.loads(s3.get_object(Bucket=env["MODELSYNC_BUCKET"],
                                              Key=f"models/{model['name']}/LATEST")["Body"].read())
            assert latest["version"] == model["version"] and set(latest) == {"version", "signature", "statement"}

        # The EFS stand-in has the contract layout and every byte matches its manifest.
        efs = root / "efs"
        assert (efs / "SEG_M2F_GrapheneL").is_symlink()
        assert (efs / "SEG_M2F_GrapheneL" / "config.yaml").is_file()
        shell = user_shell_env(root, tmp_path)
        deep = subprocess.run([sys.executable, "-m", "modelsync", "verify", "--dest", str(efs), "--deep"],
                              env=shell, capture_output=True, text=True, timeout=TIMEOUT_S)
        assert deep.returncode == 0, deep.stderr
        assert deep.stdout.count(": ok") == len(expected)

        # The commands the banner suggests work with env.sh; what is published now outlives the run.
        listed = subprocess.run([sys.executable, "-m", "modelsync", "list"], env=shell, capture_output=True,
                                text=True, timeout=TIMEOUT_S)
        assert listed.returncode == 0, listed.stderr
        assert all(name in listed.stdout for name in expected)
        folder = tmp_path / "my-model"
        folder.mkdir()
        (folder / "weights.bin").write_bytes(b"local weights")
        published = subprocess.run([sys.executable, "-m", "modelsync", "publish", str(folder), "--name", "my-model"],
                                   env=shell, capture_output=True, text=True, timeout=TIMEOUT_S)
        assert published.returncode == 0, published.stderr
        version = published.stdout.strip()

        assert running.stop(signal.SIGINT) == 0, "".join(running.stderr)
    finally:
        running.stop()
    assert "stopped everything it started" in "".join(running.stderr)
    assert port_is_closed(app_url) and port_is_closed(s3_url)
    # What was published while it ran is saved for the next run (deletions: test_saved_bucket.py).
    saved = root / "s3" / env["MODELSYNC_BUCKET"] / "models"
    assert json.loads((saved / "my-model" / "LATEST").read_text())["version"] == version
    assert (saved / "my-model" / version / "files" / "weights.bin").read_bytes() == b"local weights"


def test_pull_with_the_local_trust_key_refuses_a_tampered_and_an_unsigned_manifest(tmp_path):
    """The seed signed with <root>/keys/key.pem and the init containers trusted pub.pem; the same pull, with
    env.sh's MODELSYNC_TRUST_KEY, refuses a manifest edited in the bucket and one published unsigned."""
    root = tmp_path / "state"
    running = RunningDriver(root, tmp_path)
    try:
        stdout = running.wait_ready()
        assert "signing key pair made with openssl" in "".join(stdout)
        shell = user_shell_env(root, tmp_path)
        assert shell["MODELSYNC_TRUST_KEY"] == str(root / "keys" / "pub.pem")
        assert "PRIVATE KEY" in (root / "keys" / "key.pem").read_text()
        s3 = boto3.client("s3", endpoint_url=shell["AWS_ENDPOINT_URL_S3"], region_name="us-east-1",
                          aws_access_key_id="local", aws_secret_access_key="local")
        bucket, name = shell["MODELSYNC_BUCKET"], default_models()[0]

        def pull(dest: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
            return subprocess.run([sys.executable, "-m", "modelsync", "pull", "--dest", str(dest), "--model", name,
                                   "--progress", "quiet"], env=env, capture_output=True, text=True, timeout=TIMEOUT_S)

        assert pull(tmp_path / "ok", shell).returncode == 0  # signed by the seed: accepted
        version = json.loads(s3.get_object(Bucket=bucket, Key=f"models/{name}/LATEST")["Body"].read())["version"]
        key = f"models/{name}/{version}/manifest.json"
        manifest = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        s3.put_object(Bucket=bucket, Key=key, Body=json.dumps({**manifest, "source": {"type": "forged"}}).encode())
        tampered = pull(tmp_path / "tampered", shell)
        assert tampered.returncode == 1
        assert tampered.stderr.count("\n") == 1 and "signature refused" in tampered.stderr, tampered.stderr
        assert not (tmp_path / "tampered" / name).exists()

        folder = tmp_path / "unsigned"
        folder.mkdir()
        (folder / "weights.bin").write_bytes(b"unsigned weights")
        unsigned_env = {k: v for k, v in shell.items() if k != "MODELSYNC_SIGNING_KEY"}
        published = subprocess.run([sys.executable, "-m", "modelsync", "publish", str(folder), "--name", name],
                                   env=unsigned_env, capture_output=True, text=True, timeout=TIMEOUT_S)
        assert published.returncode == 0, published.stderr
        refused = pull(tmp_path / "unsigned-pull", shell)
        assert refused.returncode == 1
        assert "signature refused" in refused.stderr and "no signature" in refused.stderr, refused.stderr
        assert not (tmp_path / "unsigned-pull" / name).exists()
        # Without the trust key the same pull takes it (no trust key: behaviour unchanged).
        untrusted = {k: v for k, v in shell.items() if k != "MODELSYNC_TRUST_KEY"}
        assert pull(tmp_path / "no-trust", untrusted).returncode == 0
        assert running.stop(signal.SIGINT) == 0, "".join(running.stderr)
    finally:
        running.stop()


def test_second_run_reuses_bucket_mirror_and_task_volume(tmp_path):
    root = tmp_path / "state"
    first = run_until_exit(root, tmp_path, "--exit-after-ready")
    assert first.returncode == 0, first.stderr
    count = len(default_models())
    assert f"seed: {count} published, 0 unchanged, 0 failed" in first.stdout
    archives = {p.name: p.read_bytes() for p in (root / "zenodo").iterdir()}

    second = run_until_exit(root, tmp_path, "--exit-after-ready")
    assert second.returncode == 0, second.stderr
    assert re.search(r"bucket modelsync-local, [1-9]\d* objects restored", second.stdout)
    # Nothing downloaded from Zenodo, uploaded to S3, copied to the mirror or pulled to the task volume.
    assert f"seed: 0 published, {count} unchanged, 0 failed" in second.stdout
    for name in default_models():  # MODEL STATUS VERSION SIZE DOWNLOADED UPLOADED SECONDS
        row = next(line.split() for line in second.stdout.splitlines() if line.startswith(f"{name} "))
        assert row[1] == "unchanged" and row[5:9] == ["0", "B", "0", "B"], row
    assert re.search(r"EFS mirror \S+: ok, 0 files \(0 B\) copied, [1-9]\d* already in place", second.stdout)
    summary = next(json.loads(line) for line in second.stdout.splitlines() if '"event": "summary"' in line)
    assert summary["action"] == "pull" and summary["files"] == 0 and summary["skipped"] > 0
    assert {p.name: p.read_bytes() for p in (root / "zenodo").iterdir()} == archives


def test_unknown_model_is_one_line_and_exit_2(tmp_path):
    result = run_until_exit(tmp_path / "state", tmp_path, "--only", "SEG_M2F_GrapheneL,NOPE")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("local: error: "), result.stderr
    assert "NOPE" in result.stderr and "choose from" in result.stderr
    assert not (tmp_path / "state").exists(), "nothing may start before the input is checked"


def test_busy_port_is_one_line_and_exit_2(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "tools.local", "--root", str(tmp_path / "state"),
                                 "--s3-port", str(port), "--port", "0"],
                                cwd=REPO, env=driver_env(tmp_path), capture_output=True, text=True,
                                timeout=TIMEOUT_S)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert f"port {port} on 127.0.0.1 (local S3) is in use" in result.stderr and "--s3-port" in result.stderr


def test_layout_builds_the_view_an_app_of_that_layout_sees_and_prints_its_tree(tmp_path):
    root = tmp_path / "state"
    result = run_until_exit(root, tmp_path, "--layout", "maskterial", "--exit-after-ready")
    assert result.returncode == 0, result.stderr
    tree = result.stdout.split("== view ", 1)[1].split("\n== ", 1)[0]
    assert "(layout maskterial; app environment: none): what the app sees" in tree
    for line in ("  segmentation_models/", "    M2F/", "  classification_models/", "  postprocessing_models/"):
        assert f"\n{line}\n" in tree, tree
    view = root / "view"
    for name in default_models():  # SEG_M2F_X -> segmentation_models/M2F/X, as MaskTerial's server reads it
        category = {"SEG": "segmentation_models", "CLS": "classification_models", "PP": "postprocessing_models"}
        prefix, model_type, folder = name.split("_", 2)
        path = view / category[prefix] / model_type / folder
        assert os.path.realpath(path).startswith(str(root / "task" / ".modelsync" / "versions" / name) + "/")
        assert f"      {folder}/ -> {os.path.realpath(path)}" in tree
    assert (view / "segmentation_models" / "M2F" / "GrapheneL" / "config.yaml").is_file()


def test_a_layout_that_cannot_place_the_models_is_one_line_before_anything_starts(tmp_path):
    result = run_until_exit(tmp_path / "state", tmp_path, "--layout", "paddlex")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("local: error: layout 'paddlex' cannot place")
    assert "LAYOUT=" in result.stderr and not (tmp_path / "state").exists()


def test_apps_build_each_apps_view_from_one_store_and_print_both_trees(tmp_path):
    """`make local APPS=maskterial,ocr`: the README's two apps (cdk.json's stage `example`) from one local store;
    PaddleOCR prewarmed through the stand-in (no internet), each app's view printed."""
    from tests.consumers import maskterial_check_available_models
    from tools.paddle_stand_in import PADDLE_MODELS

    root = tmp_path / "state"
    result = subprocess.run(driver(root, "--apps", "maskterial,ocr", "--exit-after-ready"), cwd=REPO,
                            env=driver_env(tmp_path), capture_output=True, text=True, timeout=3 * TIMEOUT_S)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "paddleocr is not installed: its prewarm runs against the stand-in" in result.stdout
    maskterial_tree = result.stdout.split("what app maskterial sees", 1)[1].split("\n== ", 1)[0]
    ocr_tree = result.stdout.split("what app ocr sees", 1)[1].split("\n== ", 1)[0]
    assert "  segmentation_models/" in maskterial_tree and "official_models" not in maskterial_tree
    assert "  official_models/" in ocr_tree and "segmentation_models" not in ocr_tree
    # One store: both views link into the same task volume.
    task = str(root / "task" / ".modelsync" / "versions")
    views = root / "views"
    assert os.path.realpath(views / "ocr" / "official_models" / "UVDoc").startswith(task + "/paddleocr/")
    # MaskTerial's own discovery finds every model the app serves, the pretrained weights included.
    assert maskterial_check_available_models(str(views / "maskterial" / "segmentation_models")) == [
        "M2F-GrapheneL", "M2F-Synthetic_Data"]
    assert maskterial_check_available_models(str(views / "maskterial" / "classification_models")) == [
        "AMM-GrapheneL"]
    assert (views / "maskterial" / "segmentation_models" / "M2F" / "Synthetic_Data" / "model_final.pth").is_file()
    # PaddleX finds each model at official_models/<name> with the files it needs.
    for name in PADDLE_MODELS:
        assert (views / "ocr" / "official_models" / name / "inference.yml").is_file(), name
    assert f"  app ocr          {views / 'ocr'}  (layout paddlex: paddleocr)" in result.stdout.splitlines()


def test_apps_name_apps_of_the_stage_and_exclude_only_and_layout(tmp_path):
    result = run_until_exit(tmp_path / "state", tmp_path, "--apps", "maskterial,nope")
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert result.stderr.startswith("local: error: --apps 'maskterial,nope': stage example has the apps maskterial, ocr")
    result = run_until_exit(tmp_path / "state", tmp_path, "--apps", "ocr", "--layout", "paddlex")
    assert result.returncode == 2 and "leave --only and --layout out" in result.stderr
    assert not (tmp_path / "state").exists()


def test_make_local_passes_layout_on():
    dry = subprocess.run(["make", "-n", "local", "LAYOUT=maskterial"], cwd=REPO, capture_output=True, text=True,
                         timeout=TIMEOUT_S)
    assert dry.returncode == 0, dry.stderr
    assert "-m tools.local --layout maskterial" in dry.stdout
    plain = subprocess.run(["make", "-n", "local"], cwd=REPO, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert "-m tools.local" in plain.stdout and "--layout" not in plain.stdout and "--apps" not in plain.stdout
    apps = subprocess.run(["make", "-n", "local", "APPS=maskterial,ocr"], cwd=REPO, capture_output=True, text=True,
                          timeout=TIMEOUT_S)
    assert "-m tools.local" in apps.stdout and "--apps maskterial,ocr --stage example" in apps.stdout


def test_with_metrics_every_step_writes_the_records_its_container_writes_in_a_stage(tmp_path):
    from tests.emf_check import dimension_sets, namespace, records, values

    root = tmp_path / "state"
    quiet = run_until_exit(root, tmp_path, "--exit-after-ready")
    assert quiet.returncode == 0, quiet.stderr
    assert not records(quiet.stderr + quiet.stdout)  # no --metrics: nothing

    result = run_until_exit(tmp_path / "fresh", tmp_path, "--exit-after-ready", "--metrics")
    assert result.returncode == 0, result.stderr
    found = records(result.stderr)
    assert {namespace(r) for r in found} == {"ModelDelivery"}
    names = default_models()
    # seed: one per model, then the mirror step; verify (efs mode), pull and its view (s3 mode).
    assert [r["job"] for r in found] == ["seed"] * len(names) + ["mirror", "verify", "pull", "view"]
    seeds = {r["Model"]: r for r in found if r["job"] == "seed"}
    assert sorted(seeds) == sorted(names)
    for name, record in seeds.items():
        assert dimension_sets(record) == [{"Stage": "local", "Model": name}, {"Stage": "local"}]
        got = values(record)
        assert got["SeedPublished"] == (1, "Count") and got["SeedFailed"] == (0, "Count")
        assert got["SeedDownloadedBytes"][0] > 0 and got["SeedUploadedBytes"][0] > 0
    by_job = {r["job"]: r for r in found}
    assert values(by_job["mirror"])["MirrorFailed"] == (0, "Count")
    assert dimension_sets(by_job["verify"]) == [{"Stage": "local", "DeliveryMode": "efs"}]
    assert values(by_job["verify"]) == {"VerifyModels": (len(names), "Count"), "VerifyFailures": (0, "Count")}
    pull = by_job["pull"]
    assert dimension_sets(pull) == [{"Stage": "local", "DeliveryMode": "s3"}]
    summary = next(json.loads(line) for line in result.stdout.splitlines() if '"action": "pull"' in line)
    got = values(pull)
    assert (got["PullBytes"][0], got["PullFiles"][0]) == (summary["bytes"], summary["files"]) and summary["files"] > 0
    assert (got["PullModels"][0], got["PullFailures"][0]) == (len(names), 0) and got["PullSeconds"][0] > 0
    assert values(by_job["view"])["ViewSeconds"][1] == "Seconds"
