"""Short writes and a full disk (a real subprocess whose os.pwrite misbehaves), and resuming a big
file after a pull was stopped or killed part-way (bytes counted through the fault proxy)."""

import json
import os
import signal
import time

import pytest

from modelsync.store import LocalStore
from modelsync.verify import verify

from .helpers import PART, FaultProxy, Gate, assert_one_line_error, file_named, popen_cli, random_bytes, run_cli, tree

FAULTY_DISK = os.path.join(os.path.dirname(__file__), "faulty_disk")
V1 = {"config.yaml": b"v: 1\n"}
V2 = {
    "config.yaml": b"v: 2\n",
    "big.bin": random_bytes(6 * PART + 4321, 21),  # ranged: 7 parts of 1 MiB
    "mid.bin": random_bytes(PART - 1000, 22),  # one GET, hashed as it is written
    **{f"small/{i}.bin": random_bytes(70_000 + i, 30 + i) for i in range(6)},
}
V2_BYTES = sum(len(d) for d in V2.values())


@pytest.fixture
def two_versions(pulled_then_published):
    return pulled_then_published(V1, V2)


def faulty(**settings) -> dict:
    env = {"PYTHONPATH": FAULTY_DISK, "MODELSYNC_PART_SIZE_MIB": "1"}
    env.update({f"FAULTY_DISK_{k.upper()}": str(v) for k, v in settings.items()})
    return env


def events(stderr: str) -> list[dict]:
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


def files_under(folder) -> list[str]:
    return sorted(os.path.relpath(os.path.join(c, n), folder) for c, _d, ns in os.walk(folder) for n in ns)


@pytest.mark.parametrize("every", [1, 3])
def test_short_writes_are_completed_and_every_file_is_exact(two_versions, bucket, every):
    """Review finding: a short os.pwrite was ignored, leaving a run of zeros that passed verification
    (small files were hashed from the network bytes) or caused misleading sha256 retries (big ones)."""
    dest, _v1, v2 = two_versions
    proc = run_cli("pull", "--bucket", bucket, "--dest", dest, "--progress", "json", env=faulty(short_every=every))
    assert proc.returncode == 0, proc.stderr
    assert tree(dest / "m") == V2
    assert verify(dest, deep=True)[0].problems == []
    assert [e for e in events(proc.stderr) if e["event"] == "retry"] == []


@pytest.mark.parametrize("after", [0, PART // 2, 3 * PART, V2_BYTES - 50_000])
def test_a_full_disk_fails_in_one_line_and_leaves_the_disk_as_it_found_it(two_versions, bucket, after):
    dest, v1, v2 = two_versions
    store = LocalStore(dest)
    proc = run_cli("pull", "--bucket", bucket, "--dest", dest, env=faulty(enospc_after=after, short_every=4))
    assert proc.returncode == 1
    assert_one_line_error(proc, "model m: cannot write ", "No space left on device", f"m@{v2} needs ",
                          "MiB more and", "MiB free; removed the ", "check free space")
    assert tree(dest / "m") == V1  # the old version still linked, nothing of v2 visible
    assert files_under(store.version_dir("m", v2)) == []  # nothing of v2 kept on disk
    assert files_under(store.tmp) == [] and files_under(store.partial) == []
    assert store.read_record("m", v2) is None

    run_cli("pull", "--bucket", bucket, "--dest", dest, check=True)
    assert tree(dest / "m") == V2


def journal_parts(store: LocalStore) -> int:
    count = 0
    for name in os.listdir(store.partial):
        if name.endswith(".ranges"):
            with open(os.path.join(store.partial, name)) as handle:
                count = max(count, len(handle.read().splitlines()) - 1)
    return count


def hold_big_file_after(proxy, parts: int) -> Gate:
    """Hold big.bin's GETs after the first `parts` in the proxy: the file cannot be finished (and its
    journal removed) before the test stops the pull, however long this busy machine keeps the test
    from running (it used to poll, then signal, and the last ranges could land in between)."""
    gate = Gate(file_named("big.bin", after=parts))
    proxy.gates.append(gate)
    return gate


def stop_mid_file(proc, store: LocalStore, signum: int, parts: int, gate: Gate) -> None:
    assert gate.wait_for_arrivals(1), proc.communicate()
    deadline = time.monotonic() + 30
    while not (os.path.isdir(store.partial) and journal_parts(store) >= parts):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.01)
    proc.send_signal(signum)
    # A SIGTERM'd pull waits for its transfers to end within a chunk: let the held ones go on (throttled,
    # so they are still running when the stop, already requested, is seen).
    gate.release()
    proc.communicate(timeout=15)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL])
def test_a_stopped_pull_resumes_the_big_file_from_the_parts_already_written(
        two_versions, bucket, proxy, proxy_env, s3_endpoint, signum):
    dest, v1, v2 = two_versions
    store = LocalStore(dest)
    proxy.bytes_per_second = 4_000_000
    gate = hold_big_file_after(proxy, 4)
    proc = popen_cli("pull", "--bucket", bucket, "--dest", dest, "--concurrency", "2", env=proxy_env)
    stop_mid_file(proc, store, signum, parts=3, gate=gate)
    assert tree(dest / "m") == V1
    kept = journal_parts(store)
    assert kept >= 3 and any(n.endswith(".part") for n in os.listdir(store.partial))

    # A new proxy for the second pull: the first one may still answer a request the killed pull sent.
    with FaultProxy(s3_endpoint) as second:
        resumed = run_cli("pull", "--bucket", bucket, "--dest", dest, "--progress", "json",
                          env={**proxy_env, "AWS_ENDPOINT_URL_S3": second.url}, check=True)
    fetched = second.file_bytes()
    assert tree(dest / "m") == V2
    assert verify(dest, deep=True)[0].problems == []
    # The parts listed in the journal were not fetched again; everything else at most once.
    assert fetched <= V2_BYTES - kept * PART, (fetched, kept)
    assert [e for e in events(resumed.stderr) if e["event"] == "resume"]
    assert files_under(store.partial) == []


def test_a_resumed_part_that_changed_on_disk_is_caught_and_never_linked(two_versions, bucket, proxy, proxy_env):
    dest, v1, v2 = two_versions
    store = LocalStore(dest)
    proxy.bytes_per_second = 4_000_000
    gate = hold_big_file_after(proxy, 3)
    proc = popen_cli("pull", "--bucket", bucket, "--dest", dest, "--concurrency", "2", env=proxy_env)
    stop_mid_file(proc, store, signal.SIGTERM, parts=2, gate=gate)
    [journal] = [os.path.join(store.partial, n) for n in os.listdir(store.partial) if n.endswith(".ranges")]
    with open(journal) as handle:
        part = int(handle.read().splitlines()[1])  # a part the journal says is written
    with open(journal[: -len(".ranges")] + ".part", "r+b") as handle:
        handle.seek(part * PART + 100)
        byte = handle.read(1)
        handle.seek(part * PART + 100)
        handle.write(bytes([byte[0] ^ 0xFF]))

    proxy.bytes_per_second = None
    resumed = run_cli("pull", "--bucket", bucket, "--dest", dest, "--progress", "json", env=proxy_env, check=True)
    assert tree(dest / "m") == V2  # the damaged copy was hashed, rejected and fetched again in full
    assert verify(dest, deep=True)[0].problems == []
    assert any("failed its sha256 check" in e.get("message", "") for e in events(resumed.stderr))
