"""`make local`: the whole model pipeline on this machine, with no AWS account and no Docker.

    python -m tools.local [--only A,B] [--layout flat | --apps A,B [--stage example]] [--root .local]
                          [--s3-port 9100] [--port 8080] [--exit-after-ready] [--metrics]

What runs, each step the same `modelsync` command a container runs:

1. an S3-compatible server (moto) on 127.0.0.1, its bucket restored from `<root>/s3/`;
2. a local Zenodo-compatible server serving small generated archives shaped like MaskTerial's
   (kept in `<root>/zenodo/` so their checksums stay the same between runs), or ZENODO_URL when set;
3. `modelsync seed --efs-root <root>/efs`     (the seeding task; the directory stands in for EFS), signing
   with `<root>/keys/key.pem` (MODELSYNC_SIGNING_KEY; made with openssl on the first run, the local
   stand-in for the KMS signing key);
4. `modelsync verify --dest <root>/efs`       (the efs-mode init container), trusting `<root>/keys/pub.pem`
   (MODELSYNC_TRUST_KEY, as every later step);
5. `modelsync pull --dest <root>/task --view <root>/view --layout L`  (the s3-mode init container, its
   task volume and the view of it an app would mount; `make local LAYOUT=maskterial`), then the view's
   tree is printed: what that app would see;
   with --apps, the apps of a stage in cdk.json (`make local APPS=maskterial,ocr`, the README's worked example,
   stage `example`): their models are seeded and pulled into the one task volume, then
   `modelsync view <root>/views/<app> --layout <the app's layout>` builds each app's view and prints it; a
   PaddleOCR entry is prewarmed through a stand-in (tools/paddle_stand_in.py) when paddleocr is not installed;
6. `modelsync serve --dest <root>/task`       (the app), until Ctrl-C.

With --metrics every step also writes the CloudWatch EMF records its container writes in a stage (stage
`local`, on stderr): what CloudWatch Logs would turn into the metrics the alarms and the dashboard use.

A second run reuses everything under <root>: the seed finds the models unchanged and the pull finds
the files in place. Delete <root> to start from scratch. Exit codes: 0 stopped cleanly (or ready, with
--exit-after-ready), 2 bad input, a failed step's own code, 130 interrupted before ready.
"""

from __future__ import annotations

import argparse
import http.client
import importlib.util
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from modelsync.layouts import Layout as ViewLayout

REPO = Path(__file__).resolve().parent.parent
DEFAULT_ROOT = REPO / ".local"
BUCKET = "modelsync-local"
HOST = "127.0.0.1"
DEFAULT_S3_PORT = 9100
DEFAULT_APP_PORT = 8080  # the app's port in the task definition (docs/contracts.md)
READY_TIMEOUT_S = 60.0
# Fixed fake keys: moto accepts anything, and real ones must never be sent to a local server.
LOCAL_STAGE = "local"  # the Stage dimension of the metrics (--metrics)
DEFAULT_APPS_STAGE = "example"  # cdk.json's stage of the README's worked example (two apps, one store)
LOCAL_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local", "AWS_DEFAULT_REGION": "us-east-1"}


class LocalError(Exception):
    """Bad input or a step that failed; printed as one line `local: error: ...`."""

    def __init__(self, message: str, exit_code: int = 2):
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class LocalFolders:
    """Everything a run keeps under its root directory."""

    root: Path

    @property
    def s3(self) -> Path:  # the bucket's objects between runs
        return self.root / "s3"

    @property
    def zenodo(self) -> Path:  # generated archives (stable bytes, so stable md5s)
        return self.root / "zenodo"

    @property
    def efs(self) -> Path:
        return self.root / "efs"

    @property
    def task(self) -> Path:
        return self.root / "task"

    @property
    def work(self) -> Path:  # the seeder's scratch space
        return self.root / "work"

    @property
    def view(self) -> Path:  # the task volume arranged as an app expects it (--layout)
        return self.root / "view"

    @property
    def views(self) -> Path:  # with --apps: <views>/<app>, one view per app
        return self.root / "views"

    @property
    def stand_ins(self) -> Path:  # PYTHONPATH entries standing in for what needs the internet (paddleocr)
        return self.root / "stand-ins"

    @property
    def keys(self) -> Path:  # the local signing key pair (PEM), the stand-in for the KMS key
        return self.root / "keys"

    @property
    def signing_key(self) -> Path:
        return self.keys / "key.pem"

    @property
    def trust_key(self) -> Path:
        return self.keys / "pub.pem"

    @property
    def env_file(self) -> Path:
        return self.root / "env.sh"


# -- arguments and the model selection ----------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tools.local",
        description="Run seed -> verify -> pull -> serve against local S3 and Zenodo stand-ins (Ctrl-C stops all).",
    )
    parser.add_argument(
        "--only",
        default="",
        metavar="NAME,...",
        help="catalog entries to seed and serve (default: the catalog's enabled Zenodo entries)",
    )
    parser.add_argument(
        "--layout",
        dest="view_layout",
        default="flat",
        metavar="LAYOUT",
        help="layout of the view built from the task volume (modelsync/layouts.yaml; default flat)",
    )
    parser.add_argument(
        "--apps",
        default="",
        metavar="NAME,...",
        help="instead of --only and --layout: the apps of --stage in cdk.json, their models and one view each",
    )
    parser.add_argument(
        "--stage",
        default=DEFAULT_APPS_STAGE,
        help=f"the stage whose apps --apps names (default {DEFAULT_APPS_STAGE}: the README's worked example)",
    )
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT, help=f"state directory (default {DEFAULT_ROOT})")
    parser.add_argument(
        "--s3-port",
        type=int,
        default=DEFAULT_S3_PORT,
        help=f"port of the local S3 server (default {DEFAULT_S3_PORT}; 0 picks a free one)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=DEFAULT_APP_PORT,
        help=f"port of `modelsync serve` (default {DEFAULT_APP_PORT}; 0 picks a free one)",
    )
    parser.add_argument(
        "--exit-after-ready", action="store_true", help="stop everything once the app is ready (for tests and CI)"
    )
    parser.add_argument(
        "--metrics",
        action="store_true",
        help="write the CloudWatch EMF records a stage's containers write (on stderr, stage 'local')",
    )
    return parser.parse_args(argv)


def select_models(only: str) -> list:
    """The catalog entries to run with. Bad names fail here, before anything starts."""
    from modelsync.errors import ModelsyncError
    from modelsync.seed.catalog import ZenodoSource, load_catalog, parse_only

    try:
        catalog = load_catalog()
        names = parse_only(only)
        if names:
            return catalog.select(names)
    except ModelsyncError as err:
        raise LocalError(str(err)) from None
    # PaddleOCR downloads from the internet through its own library: not part of the default local run.
    return [e for e in catalog.select() if isinstance(e.source, ZenodoSource)]


def check_view_layout(name: str, models: list[str]):
    """The layout, and that it places every model: checked before anything starts."""
    from modelsync.errors import ModelsyncError
    from modelsync.layouts import load_layouts

    try:
        layout = load_layouts().get(name)
        layout.check(models)
    except ModelsyncError as err:
        raise LocalError(f"{err} (LAYOUT=... with make)") from None
    return layout


@dataclass(frozen=True)
class AppView:
    """One app of --apps: its view folder, its layout (modelsync's) and the models it serves."""

    name: str
    folder: Path
    layout: ViewLayout
    models: tuple[str, ...]


def stage_apps(stage: str, wanted: str, views: Path) -> list[AppView]:
    """The apps --apps names, from the stage's settings (checked as synth checks them)."""
    # The settings import aws_cdk: keep jsii's Node end-of-life banner out of the run's output, as the Makefile does.
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    from model_delivery.errors import ModelDeliveryError
    from stacks.settings import load_settings

    context = json.loads((REPO / "cdk.json").read_text())["context"]
    try:
        settings = load_settings({**context, "stage": stage}, environ={})
    except ModelDeliveryError as err:
        raise LocalError(f"stage {stage}: {err}") from None
    names = [name.strip() for name in wanted.split(",") if name.strip()]
    unknown = [name for name in names if name not in settings.apps]
    if unknown or not names:
        raise LocalError(
            f"--apps {wanted!r}: stage {stage} has the apps {', '.join(settings.apps)} "
            "(APPS=... and LOCAL_STAGE=... with make)"
        )
    apps = [settings.apps[name] for name in names]
    return [
        AppView(a.name, views / a.name, check_view_layout(a.layout, list(a.served_names)), a.served_names) for a in apps
    ]


def paddle_stand_in(entries: list, folders: LocalFolders) -> Path | None:
    """A PYTHONPATH entry with the PaddleOCR stand-in, when a PaddleOCR entry is seeded and paddleocr is missing."""
    from modelsync.seed.catalog import PaddleOCRSource
    from tools.paddle_stand_in import install

    paddle = [e for e in entries if isinstance(e.source, PaddleOCRSource)]
    if not paddle or importlib.util.find_spec("paddleocr") is not None:
        return None
    return install(folders.stand_ins, paddle[0].source.paddleocr_version)


def check_port_free(port: int, what: str, option: str) -> None:
    if port == 0:
        return
    if not 0 < port < 65536:
        raise LocalError(f"{option} {port} is not a TCP port: use 1-65535, or 0 for a free one")
    with socket.socket() as sock:
        # As the servers do: a port held only by closed connections (TIME_WAIT) is free to them.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            raise LocalError(
                f"port {port} on {HOST} ({what}) is in use, maybe by another `make local`: "
                f"stop it or pass {option} N (LOCAL_ARGS='{option} N' with make)"
            ) from None


# -- the local S3 server and its bucket saved between runs --------------------------------------


def start_s3(stack: ExitStack, port: int) -> str:
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address=HOST, port=port, verbose=False)
    server.start()
    stack.callback(server.stop)
    host, bound = server.get_host_and_port()
    return f"http://{host}:{bound}"


def s3_client(endpoint: str):
    import boto3

    return boto3.session.Session(
        aws_access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        region_name=LOCAL_CREDENTIALS["AWS_DEFAULT_REGION"],
    ).client("s3", endpoint_url=endpoint)


class SavedBucket:
    """A bucket of the local S3 server kept between runs as files: `<folder>/<bucket>/<key>`, plus
    `<folder>/<bucket>.index.json` (key -> ETag) so a save downloads only what changed."""

    def __init__(self, client, folder: Path, bucket: str = BUCKET):
        self.client, self.bucket = client, bucket
        self.objects = folder / bucket
        self.index = folder / f"{bucket}.index.json"

    def restore(self) -> int:
        """Create the bucket and upload what the last run saved. Returns the number of objects."""
        self.client.create_bucket(Bucket=self.bucket)
        count = 0
        # Skip what an interrupted save left behind (see save): it is no object.
        for path in sorted(p for p in self.objects.rglob("*") if p.is_file() and not p.name.endswith(".partial")):
            self.client.upload_file(str(path), self.bucket, path.relative_to(self.objects).as_posix())
            count += 1
        self._write_index(self._etags())  # fresh ETags: the next save downloads nothing
        return count

    def save(self) -> None:
        """Mirror the bucket into the folder: download new or changed objects, drop deleted ones."""
        etags = self._etags()
        known = json.loads(self.index.read_text()) if self.index.is_file() else {}
        for key, etag in etags.items():
            path = self._path(key)
            if known.get(key) == etag and path.is_file():
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(f".{path.name}.partial")
            self.client.download_file(self.bucket, key, str(partial))
            os.replace(partial, path)
        for key in set(known) - set(etags):
            self._path(key).unlink(missing_ok=True)
        for leftover in self.objects.rglob("*.partial"):  # from a save that was interrupted
            leftover.unlink()
        self._write_index(etags)

    def _path(self, key: str) -> Path:
        path = (self.objects / key).resolve()
        if not path.is_relative_to(self.objects.resolve()):
            raise LocalError(f"object key {key!r} would leave {self.objects}: delete it and run again")
        return path

    def _etags(self) -> dict[str, str]:
        etags = {}
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket):
            etags.update({obj["Key"]: obj["ETag"] for obj in page.get("Contents", [])})
        return etags

    def _write_index(self, etags: dict[str, str]) -> None:
        self.index.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.index.with_name(f".{self.index.name}.tmp")
        tmp.write_text(json.dumps(etags, indent=1, sort_keys=True))
        os.replace(tmp, self.index)


# -- the local Zenodo ---------------------------------------------------------------------------


def start_zenodo(stack: ExitStack, entries: list, archives: Path) -> str:
    """A Zenodo records API on 127.0.0.1 serving one generated archive per Zenodo entry."""
    from modelsync.seed.catalog import ZenodoSource

    # The same server the seeding tests use (tools/fake_zenodo.py).
    from tools.fake_zenodo import FakeZenodo, model_zip

    server = FakeZenodo()
    stack.callback(server.close)
    archives.mkdir(parents=True, exist_ok=True)
    for entry in (e for e in entries if isinstance(e.source, ZenodoSource)):
        path = archives / entry.source.file
        if not path.is_file():  # generated once: zip timestamps would change the md5 every run
            tmp = path.with_name(f".{path.name}.partial")
            tmp.write_bytes(model_zip(entry.family, entry.name))
            os.replace(tmp, path)
        server.add(entry.source.record, entry.source.file, path.read_bytes())
    return server.url


# -- the modelsync steps ------------------------------------------------------------------------


def ensure_keys(folders: LocalFolders) -> bool:
    """The signing key pair, made once with openssl as docs/runtime.md shows (True when made now)."""
    if folders.signing_key.is_file() and folders.trust_key.is_file():
        return False
    folders.keys.mkdir(parents=True, exist_ok=True)
    private = folders.keys / "key.pem.new"
    try:
        subprocess.run(
            ["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(private)],
            check=True,
            capture_output=True,
        )
        os.chmod(private, 0o600)
        subprocess.run(
            ["openssl", "ec", "-in", str(private), "-pubout", "-out", str(folders.trust_key)],
            check=True,
            capture_output=True,
        )
    except (OSError, subprocess.CalledProcessError) as exc:
        raise LocalError(
            f"cannot make the local signing key with openssl ({exc}): install openssl, or put an EC "
            f"P-256 key pair at {folders.signing_key} and {folders.trust_key}"
        ) from None
    os.replace(private, folders.signing_key)  # last: a half-made pair is made again next run
    return True


def child_environment(
    endpoint: str, zenodo_url: str, names: list[str], metrics: bool = False, trust_key: Path | None = None
) -> dict[str, str]:
    """The environment a task definition would set, pointed at the local servers. Nothing AWS or
    MODELSYNC from the caller's shell is passed on: no real credential can reach a local server.
    With `metrics`, the variables the monitoring constructs set too (each step adds its delivery mode);
    with `trust_key`, MODELSYNC_TRUST_KEY (the seed step adds its MODELSYNC_SIGNING_KEY)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MODELSYNC_"))}
    env.update(LOCAL_CREDENTIALS)
    env.update(
        {
            "AWS_ENDPOINT_URL_S3": endpoint,
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
            "MODELSYNC_BUCKET": BUCKET,
            "MODELSYNC_MODELS": ",".join(names),
            "ZENODO_URL": zenodo_url,
        }
    )
    if trust_key is not None:
        env["MODELSYNC_TRUST_KEY"] = str(trust_key)
    if metrics:
        from modelsync import metrics as emf

        env.update({emf.NAMESPACE_ENV: emf.DEFAULT_NAMESPACE, emf.STAGE_ENV: LOCAL_STAGE})
    return env


def in_mode(env: dict[str, str], mode: str) -> dict[str, str]:
    """A step's environment as the init container of that delivery mode has it."""
    from modelsync.metrics import MODE_ENV

    return {**env, MODE_ENV: mode}


def modelsync(*args: str) -> list[str]:
    return [sys.executable, "-m", "modelsync", *args]


def run_step(title: str, command: list[str], env: dict[str, str]) -> None:
    print(f"\n== {title}: {' '.join(shlex.quote(a) for a in command[2:])}", flush=True)
    proc = subprocess.Popen(command, env=env, cwd=REPO)
    try:
        code = proc.wait()
    finally:
        stop_process(proc)
    if code != 0:
        raise LocalError(f"{title} failed (exit {code}); its output above says why", exit_code=code)


def stop_process(proc: subprocess.Popen, grace_s: float = 3.0) -> None:
    """Ctrl-C first (modelsync exits cleanly on it), then terminate, then kill."""
    if proc.poll() is not None:
        return
    for send in (lambda: proc.send_signal(signal.SIGINT), proc.terminate, proc.kill):
        send()
        try:
            proc.wait(timeout=grace_s)
            return
        except subprocess.TimeoutExpired:
            continue


def start_serve(stack: ExitStack, dest: Path, port: int, env: dict[str, str]) -> tuple[subprocess.Popen, int]:
    """Start `modelsync serve`; return it and the port it reports (it may have picked one)."""
    command = modelsync("serve", "--dest", str(dest), "--host", HOST, "--port", str(port))
    print(f"\n== app: {' '.join(shlex.quote(a) for a in command[2:])}", flush=True)
    proc = subprocess.Popen(command, env=env, cwd=REPO, stderr=subprocess.PIPE, text=True, bufsize=1)
    stack.callback(stop_process, proc)
    found: list[int] = []
    listening = threading.Event()

    def relay() -> None:  # pass its log through, and catch "listening on HOST:PORT"
        for line in proc.stderr or ():
            sys.stderr.write(line)
            match = re.search(r"listening on [^\s:]+:(\d+)", line)
            if match and not found:
                found.append(int(match.group(1)))
                listening.set()
        listening.set()

    threading.Thread(target=relay, daemon=True).start()
    listening.wait(READY_TIMEOUT_S)
    if not found:
        code = proc.poll()
        raise LocalError(f"modelsync serve did not start (exit {code}); its output above says why", exit_code=1)
    return proc, found[0]


def wait_until_ready(url: str, proc: subprocess.Popen) -> list[dict]:
    """Poll /readyz until 200; return what /models lists."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    last = "no answer"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise LocalError(f"modelsync serve exited with code {proc.returncode} before it was ready", exit_code=1)
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=5) as response:
                if response.status == 200:
                    with urllib.request.urlopen(f"{url}/models", timeout=5) as models:
                        return json.load(models)
        except urllib.error.HTTPError as err:
            last = err.read().decode(errors="replace").strip()
        except (urllib.error.URLError, ConnectionError, http.client.HTTPException) as err:
            last = str(err)
        time.sleep(0.2)
    raise LocalError(f"{url}/readyz did not answer 200 within {READY_TIMEOUT_S:.0f} s (last: {last})", exit_code=1)


# -- what the user sees ---------------------------------------------------------------------------


def write_env_file(folders: LocalFolders, env: dict[str, str]) -> None:
    names = (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_DEFAULT_REGION",
        "AWS_ENDPOINT_URL_S3",
        "AWS_CONFIG_FILE",
        "AWS_SHARED_CREDENTIALS_FILE",
        "AWS_EC2_METADATA_DISABLED",
        "MODELSYNC_BUCKET",
        "MODELSYNC_MODELS",
        "ZENODO_URL",
        "MODELSYNC_TRUST_KEY",
    )
    lines = [
        "# Written by `make local` (tools/local.py): `source` it to talk to the local stand-ins.",
        "unset AWS_PROFILE AWS_SESSION_TOKEN AWS_ENDPOINT_URL",
    ]
    lines += [f"export {name}={shlex.quote(env[name])}" for name in names]
    lines.append(f"export MODELSYNC_DEST={shlex.quote(str(folders.task))}")
    lines.append(f"export MODELSYNC_SIGNING_KEY={shlex.quote(str(folders.signing_key))}")
    lines.append(f'export PATH={shlex.quote(str(Path(sys.executable).parent))}:"$PATH"')
    folders.env_file.write_text("\n".join(lines) + "\n")


def shown(path: Path) -> str:
    return os.path.relpath(path) if path.is_relative_to(Path.cwd()) else str(path)


VIEW_TREE_ENTRIES = 12  # per directory; the rest is counted


def view_tree(root: Path) -> list[str]:
    """The view as an app mounting it sees it: directories through the links, link targets shown,
    modelsync's own .modelsync-view left out."""
    lines = []

    def walk(folder: Path, depth: int) -> None:
        entries = sorted(e for e in os.listdir(folder) if not (depth == 0 and e == ".modelsync-view"))
        for name in entries[:VIEW_TREE_ENTRIES]:
            path = folder / name
            target = f" -> {os.readlink(path)}" if path.is_symlink() and depth > 0 else ""
            lines.append(f"  {'  ' * depth}{name}{'/' if path.is_dir() else ''}{target}")
            if path.is_dir():
                walk(path, depth + 1)
        if len(entries) > VIEW_TREE_ENTRIES:
            lines.append(f"  {'  ' * depth}... ({len(entries) - VIEW_TREE_ENTRIES} more)")

    walk(root, 0)
    return lines


def print_view(view: Path, view_layout, who: str = "the app") -> None:
    env = " ".join(f"{k}={v}" for k, v in view_layout.app_environment(str(view)).items()) or "none"
    print(f"\n== view {shown(view)} (layout {view_layout.name}; app environment: {env}): what {who} sees", flush=True)
    print("\n".join(view_tree(view)), flush=True)


def ready_banner(
    folders: LocalFolders,
    s3_url: str,
    zenodo_url: str,
    app_url: str,
    models: list[dict],
    exit_after_ready: bool,
    view_layout,
    apps: list[AppView],
) -> str:
    served = ", ".join(f"{m['name']}@{m['version']}" for m in models)
    env_file = shown(folders.env_file)
    lines = [
        "",
        "== make local is ready" + ("" if exit_after_ready else ": Ctrl-C stops everything it started"),
        f"  S3 (moto)        {s3_url}  bucket {BUCKET}, saved in {shown(folders.s3)}",
        f"  Zenodo           {zenodo_url}",
        f"  EFS mirror       {shown(folders.efs)}  (verified)",
        f"  task volume      {shown(folders.task)}",
        f"  view             {shown(folders.view)}  (layout {view_layout.name}, links into the task volume)",
        *(f"  app {a.name:<12} {shown(a.folder)}  (layout {a.layout.name}: {', '.join(a.models)})" for a in apps),
        f"  app              {app_url}  serving {len(models)} models: {served}",
        "",
        "Try, in another shell:",
        f"  curl -s {app_url}/models",
        f"  curl -s {app_url}/readyz",
        f"  source {env_file}          # local endpoint, fake keys, bucket, modelsync on PATH",
        "  modelsync list",
        f"  modelsync verify --dest {shown(folders.efs)} --deep",
        f"  modelsync pull --dest {shown(folders.root / 'task2')}",
        f"  modelsync view {shown(folders.view)} --dest {shown(folders.task)} --layout {view_layout.name}",
        "  modelsync publish SOME_FOLDER --name my-model",
        "",
    ]
    return "\n".join(lines)


# -- the run -------------------------------------------------------------------------------------


def run(args: argparse.Namespace, progress: dict) -> int:
    if importlib.util.find_spec("modelsync") is None:
        raise LocalError(
            "modelsync is not installed in this Python: run `make install-dev` "
            "(or `pip install -e ./container`) and try again"
        )
    folders = LocalFolders(args.root.resolve())
    if args.apps and (args.only or args.view_layout != "flat"):
        raise LocalError("--apps takes each app's models and layout from cdk.json: leave --only and --layout out")
    apps = stage_apps(args.stage, args.apps, folders.views) if args.apps else []
    entries = select_models(",".join(dict.fromkeys(m for a in apps for m in a.models)) if apps else args.only)
    names = [e.name for e in entries]
    view_layout = check_view_layout(args.view_layout, names)
    check_port_free(args.s3_port, "local S3", "--s3-port")
    check_port_free(args.port, "the app", "--port")
    for folder in (folders.efs, folders.task, folders.work):
        folder.mkdir(parents=True, exist_ok=True)
    stand_in = paddle_stand_in(entries, folders)

    with ExitStack() as stack:
        s3_url = start_s3(stack, args.s3_port)
        saved = SavedBucket(s3_client(s3_url), folders.s3)
        restored = saved.restore()
        stack.callback(saved.save)  # runs before the server stops (LIFO)
        print(f"== local S3 on {s3_url}: bucket {BUCKET}, {restored} objects restored from {folders.s3}")
        zenodo_url = os.environ.get("ZENODO_URL", "").strip()
        if zenodo_url:
            print(f"== Zenodo: {zenodo_url} (ZENODO_URL; real archives, hundreds of MB each)")
        else:
            zenodo_url = start_zenodo(stack, entries, folders.zenodo)
            print(f"== local Zenodo on {zenodo_url}: generated archives in {folders.zenodo}")
        if ensure_keys(folders):
            print(f"== signing key pair made with openssl: {shown(folders.signing_key)}, {shown(folders.trust_key)}")
        env = child_environment(s3_url, zenodo_url, names, metrics=args.metrics, trust_key=folders.trust_key)

        seed_env = {**env, "MODELSYNC_SIGNING_KEY": str(folders.signing_key)}
        if stand_in is not None:
            print(f"== paddleocr is not installed: its prewarm runs against the stand-in in {shown(stand_in)}")
            seed_env["PYTHONPATH"] = os.pathsep.join([str(stand_in), str(REPO)])
        run_step(
            "seed",
            modelsync(
                "seed", "--only", ",".join(names), "--efs-root", str(folders.efs), "--workdir", str(folders.work)
            ),
            seed_env,
        )
        saved.save()
        run_step("efs-mode init container", modelsync("verify", "--dest", str(folders.efs)), in_mode(env, "efs"))
        run_step(
            "s3-mode init container",
            modelsync("pull", "--dest", str(folders.task), "--view", str(folders.view), "--layout", view_layout.name),
            in_mode(env, "s3"),
        )
        print_view(folders.view, view_layout)
        for app in apps:
            run_step(
                f"view of app {app.name}",
                modelsync("view", str(app.folder), "--dest", str(folders.task), "--layout", app.layout.name)
                + [arg for model in app.models for arg in ("--model", model)],
                env,
            )
            print_view(app.folder, app.layout, f"app {app.name}")
        proc, port = start_serve(stack, folders.task, args.port, env)
        app_url = f"http://{HOST}:{port}"
        models = wait_until_ready(app_url, proc)
        write_env_file(folders, env)
        print(
            ready_banner(folders, s3_url, zenodo_url, app_url, models, args.exit_after_ready, view_layout, apps),
            flush=True,
        )
        progress["ready"] = True
        if args.exit_after_ready:
            return 0
        code = proc.wait()
        if code != 0:
            raise LocalError(f"modelsync serve stopped with exit code {code}", exit_code=code)
    return 0


def _stop_on_sigterm(signum, frame):
    raise KeyboardInterrupt  # same clean-up path as Ctrl-C


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    progress = {"ready": False}
    try:
        return run(args, progress)
    except LocalError as err:
        print(f"local: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print(
            f"\nlocal: stopped everything it started; state is kept in {args.root} (delete it to start from scratch)",
            file=sys.stderr,
        )
        return 0 if progress["ready"] else 130


if __name__ == "__main__":
    sys.exit(main())
