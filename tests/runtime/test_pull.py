import json
import os
import threading

from modelsync.progress import Progress
from modelsync.pull import pull
from modelsync.store import LocalStore

from .helpers import PART, model_files, run_cli, tree


def test_cold_pull_makes_exactly_the_published_tree(client, bucket, publish, tmp_path):
    files = model_files()
    v = publish("SEG_M2F_WSe2", files)
    dest = tmp_path / "models"
    result = pull(client, bucket, dest, part_size=PART)
    [model] = result.models
    assert (model.name, model.version) == ("SEG_M2F_WSe2", v)
    assert model.downloaded_files == 4 and model.skipped_files == 0
    assert model.downloaded_bytes == sum(map(len, files.values()))
    assert tree(dest / "SEG_M2F_WSe2") == files
    link = os.readlink(dest / "SEG_M2F_WSe2")
    assert link == f".modelsync/versions/SEG_M2F_WSe2/{v}"  # relative: works under any mount point
    assert sorted(os.listdir(dest)) == [".modelsync", "SEG_M2F_WSe2"]
    assert os.listdir(dest / ".modelsync" / "tmp") == []


def test_warm_pull_downloads_nothing_and_asks_one_small_request_per_model(
        publish, bucket, proxy, proxy_client, tmp_path):
    publish("a", model_files(seed=1))
    publish("b", model_files(seed=2))
    dest = tmp_path / "d"
    pull(proxy_client, bucket, dest, ["a", "b"], part_size=PART)
    proxy.counts.clear()
    result = pull(proxy_client, bucket, dest, ["a", "b"], part_size=PART)
    assert result.downloaded_files == 0 and result.skipped_files == 8
    assert sorted(proxy.counts.elements()) == [
        ("GET", f"/{bucket}/models/a/LATEST"), ("GET", f"/{bucket}/models/b/LATEST")
    ]
    proxy.counts.clear()
    pinned = pull(proxy_client, bucket, dest, [f"a@{result.models[0].version}"], part_size=PART)
    assert pinned.downloaded_files == 0 and not proxy.counts  # a pinned, recorded version: no request


def test_new_version_fetches_only_changed_files_and_reuses_the_rest(client, bucket, publish, tmp_path):
    files = model_files(seed=1)
    v1 = publish("m", files)
    dest = tmp_path / "d"
    pull(client, bucket, dest, part_size=PART)
    changed = dict(files, **{"config.yaml": b"changed\n", "new.txt": b"new"})
    v2 = publish("m", changed)
    result = pull(client, bucket, dest, part_size=PART)
    [model] = result.models
    assert model.version == v2 and model.downloaded_files == 2 and model.skipped_files == 3
    assert tree(dest / "m") == changed
    store = LocalStore(dest)
    big_old = os.stat(os.path.join(store.version_dir("m", v1), "model.pth"))
    big_new = os.stat(os.path.join(store.version_dir("m", v2), "model.pth"))
    assert big_old.st_ino == big_new.st_ino  # hard link, not a second copy
    # Going back to the old version by pin needs no download at all.
    back = pull(client, bucket, dest, [f"m@{v1}"], part_size=PART)
    assert back.downloaded_files == 0 and tree(dest / "m") == files


def test_a_locally_changed_file_is_detected_and_replaced(client, bucket, publish, tmp_path):
    files = model_files()
    publish("m", files)
    dest = tmp_path / "d"
    pull(client, bucket, dest, part_size=PART)
    target = dest / "m" / "config.yaml"
    target.write_bytes(b"seed: X\n")  # same size, different bytes and mtime
    result = pull(client, bucket, dest, part_size=PART)
    assert result.downloaded_files == 1 and result.downloaded_bytes == len(files["config.yaml"])
    assert tree(dest / "m") == files


def _read_while_switching(client, bucket, dest, versions, read, switches: int = 60):
    """Run read() in a loop on another thread while pulls switch model m between versions;
    returns (the set of values read, the OSErrors raised)."""
    stop = threading.Event()
    seen, failures = set(), []

    def reader():
        while not stop.is_set():
            try:
                seen.add(read())
            except OSError as exc:
                failures.append(exc)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for i in range(switches):
            pull(client, bucket, dest, [f"m@{versions[i % len(versions)]}"])
    finally:
        stop.set()
        thread.join()
    return seen, failures


def test_the_version_switch_is_atomic_for_readers(client, bucket, publish, tmp_path):
    """While pulls switch back and forth, the path DEST/NAME/<file> never disappears."""
    v1 = publish("m", {"w.bin": b"1" * 1000})
    v2 = publish("m", {"w.bin": b"2" * 1000})
    dest = tmp_path / "d"
    pull(client, bucket, dest, [f"m@{v1}"])
    pull(client, bucket, dest, [f"m@{v2}"])
    def read():
        with open(dest / "m" / "w.bin", "rb") as handle:
            return handle.read()

    seen, failures = _read_while_switching(client, bucket, dest, [v1, v2], read)
    assert failures == []
    assert seen <= {b"1" * 1000, b"2" * 1000} and len(seen) == 2


def test_cli_pull_reads_its_configuration_from_the_environment(bucket, publish, tmp_path):
    files = model_files()
    v = publish("envmodel", files)
    publish("other", {"x": b"x"})
    dest = tmp_path / "from-env"
    env = {"MODELSYNC_BUCKET": bucket, "MODELSYNC_DEST": str(dest), "MODELSYNC_MODELS": "envmodel",
           "MODELSYNC_CONCURRENCY": "4", "MODELSYNC_PART_SIZE_MIB": "1"}
    proc = run_cli("pull", env=env, check=True)
    assert sorted(os.listdir(dest)) == [".modelsync", "envmodel"]
    assert tree(dest / "envmodel") == files
    # Not a terminal: progress as JSON lines on stderr, the closing summary as JSON on stdout.
    events = [json.loads(line) for line in proc.stderr.splitlines()]
    assert {e["event"] for e in events} >= {"start", "done"}
    summary = json.loads(proc.stdout)
    assert summary["event"] == "summary" and summary["files"] == 4 and summary["skipped"] == 0
    assert summary["bytes"] == sum(map(len, files.values())) and summary["models"] == [f"envmodel@{v}"]
    assert summary["seconds"] > 0 and summary["mib_per_s"] > 0
    warm = json.loads(run_cli("pull", env=env, check=True).stdout)
    assert warm["files"] == 0 and warm["skipped"] == 4


def test_progress_bar_on_a_terminal(client, bucket, publish, tmp_path):
    publish("m", model_files())

    class Tty:
        def __init__(self):
            self.text = ""

        def isatty(self):
            return True

        def write(self, s):
            self.text += s

        def flush(self):
            pass

    stream = Tty()
    progress = Progress(stream=stream)
    assert progress.mode == "bar"
    pull(client, bucket, tmp_path / "d", progress=progress, part_size=PART)
    last = stream.text.rstrip("\n").split("\r")[-1]
    assert "100.0%" in last and "MiB/s" in last and "[" + "#" * 30 + "]" in last


def test_every_model_at_latest_by_default(client, bucket, publish, tmp_path, s3_client):
    publish("one", {"a": b"1"})
    publish("two", {"b": b"2"})
    # A folder without LATEST (first publish still running) is not a model yet.
    s3_client.put_object(Bucket=bucket, Key="models/three/abc/files/x", Body=b"x")
    result = pull(client, bucket, tmp_path / "d")
    assert sorted(m.name for m in result.models) == ["one", "two"]


def test_a_custom_prefix_is_used_for_publish_list_and_pull(bucket, tmp_path, s3_client):
    from .helpers import write_model

    folder = write_model(tmp_path / "src", {"a.txt": b"prefixed"})
    env = {"MODELSYNC_PREFIX": "team/models", "MODELSYNC_BUCKET": bucket}
    version = run_cli("publish", folder, "--name", "p", env=env, check=True).stdout.strip()
    keys = {o["Key"] for o in s3_client.list_objects_v2(Bucket=bucket)["Contents"]}
    assert f"team/models/p/{version}/manifest.json" in keys and "team/models/p/LATEST" in keys
    assert version in run_cli("list", env=env, check=True).stdout
    run_cli("pull", "--dest", tmp_path / "d", env=env, check=True)
    assert tree(tmp_path / "d" / "p") == {"a.txt": b"prefixed"}
    # The default prefix sees nothing there.
    assert run_cli("list", "--bucket", bucket, check=True).stdout.count("\n") == 1


def test_a_reader_that_resolves_the_model_path_once_sees_one_version(client, bucket, publish, tmp_path):
    """What IS guaranteed across a switch (review finding 4): opening files one by one through
    DEST/NAME/ can mix versions; resolving realpath(DEST/NAME) once and opening every file
    under it cannot, while the old version directory is kept (pull never deletes it)."""
    v1 = publish("m", {"config.yaml": b"v: 1\n", "w.bin": b"1" * 1000})
    v2 = publish("m", {"config.yaml": b"v: 2\n", "w.bin": b"2" * 1000})
    dest = tmp_path / "d"
    pull(client, bucket, dest, [f"m@{v1}"])
    pull(client, bucket, dest, [f"m@{v2}"])

    # Deterministic: a switch between the two opens.
    pull(client, bucket, dest, [f"m@{v1}"])
    root = os.path.realpath(dest / "m")
    through_link = (dest / "m" / "config.yaml").read_bytes()
    resolved = open(os.path.join(root, "config.yaml"), "rb").read()
    pull(client, bucket, dest, [f"m@{v2}"])
    assert (through_link, (dest / "m" / "w.bin").read_bytes()) == (b"v: 1\n", b"2" * 1000)  # the mix
    assert (resolved, open(os.path.join(root, "w.bin"), "rb").read()) == (b"v: 1\n", b"1" * 1000)

    # Under load: a reader thread resolving once per pair of opens never sees a mix.
    pairs = {(b"v: 1\n", b"1" * 1000), (b"v: 2\n", b"2" * 1000)}
    def read():
        root = os.path.realpath(dest / "m")
        with open(os.path.join(root, "config.yaml"), "rb") as a, open(os.path.join(root, "w.bin"), "rb") as b:
            return a.read(), b.read()

    seen, failures = _read_while_switching(client, bucket, dest, [v1, v2], read)
    assert failures == [] and seen == pairs
