"""A pull killed at any moment, and several pulls into one dest at once (separate processes)."""

import os
import signal
import time

import pytest

from modelsync.pull import pull
from modelsync.store import LocalStore
from modelsync.verify import verify

from .helpers import PART, Gate, file_named, popen_cli, random_bytes, run_cli, tree

V1 = {"config.yaml": b"v: 1\n", "shared.bin": random_bytes(200_000, 7)}
V2 = {
    "config.yaml": b"v: 2\n",
    "shared.bin": V1["shared.bin"],
    "big.bin": random_bytes(3 * PART + 777, 8),
    **{f"shards/{i:02d}.bin": random_bytes(150_000, 100 + i) for i in range(8)},
}


def part_files(dest) -> list[str]:
    tmp = os.path.join(dest, ".modelsync", "tmp")
    return [n for n in os.listdir(tmp) if n.endswith(".part")] if os.path.isdir(tmp) else []


def assert_old_version_intact(dest):
    assert tree(dest / "m") == V1  # the app's view: exactly v1, nothing partial, nothing from v2
    [state] = verify(dest, deep=True)
    assert state.problems == []


@pytest.fixture
def two_versions(pulled_then_published):
    return pulled_then_published(V1, V2)


def test_a_pull_killed_mid_way_keeps_the_old_version_and_the_next_pull_completes(
        two_versions, bucket, proxy, proxy_env):
    dest, v1, v2 = two_versions
    vdir = LocalStore(dest).version_dir("m", v2)
    # The last shard's GET is held in the proxy: its temp file exists (opened before the GET) and
    # cannot be renamed before the kill, however slowly this machine runs (a sleep-and-poll could
    # see a temp file that was renamed before the kill landed).
    gate = Gate(file_named("shards/07.bin"))
    proxy.gates.append(gate)
    proc = popen_cli("pull", "--bucket", bucket, "--dest", dest, "--concurrency", "2", env=proxy_env)
    assert gate.wait_for_arrivals(1), proc.communicate()
    wait_until_mid_way(proc, dest, vdir)  # and other files already renamed into the new version
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    gate.release()
    assert part_files(dest), "the kill should have left a temp file behind"
    assert_old_version_intact(dest)

    resumed = run_cli("pull", "--bucket", bucket, "--dest", dest, env=proxy_env, check=True)
    assert tree(dest / "m") == V2
    assert os.readlink(dest / "m").endswith(v2)
    assert part_files(dest) == []  # the dead process's temp files are cleaned up
    # Files verified and renamed before the kill are not downloaded again.
    assert '"skipped": 0' not in resumed.stdout


@pytest.mark.parametrize("delay", [0.3, 0.6, 0.9, 1.2])
def test_a_pull_killed_at_other_moments_never_exposes_a_partial_tree(two_versions, bucket, proxy, proxy_env, delay):
    dest, v1, v2 = two_versions
    proxy.bytes_per_second = 3_000_000
    proc = popen_cli("pull", "--bucket", bucket, "--dest", dest, env=proxy_env)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    current = tree(dest / "m")
    assert current in (V1, V2)
    [state] = verify(dest, deep=True)
    assert state.problems == []
    proxy.bytes_per_second = None
    run_cli("pull", "--bucket", bucket, "--dest", dest, env=proxy_env, check=True)
    assert tree(dest / "m") == V2


def expected_gets(bucket, version) -> dict:
    """Object GETs a single cold pull of V2 needs: one per 1 MiB part (shared.bin is reused)."""
    return {
        f"/{bucket}/models/m/{version}/files/{path}": max(1, -(-len(data) // PART))
        for path, data in V2.items() if path != "shared.bin"
    }


def start_pulls(count, bucket, dest, env):
    procs = [popen_cli("pull", "--bucket", bucket, "--dest", dest, "--concurrency", "4", env=env)
             for _ in range(count)]
    outputs = [p.communicate(timeout=60) for p in procs]
    return procs, outputs


def test_concurrent_pulls_into_one_dest_fetch_each_file_once(two_versions, bucket, proxy, proxy_env):
    dest, v1, v2 = two_versions
    proxy.bytes_per_second = 8_000_000  # long enough for the three processes to overlap
    procs, outputs = start_pulls(3, bucket, dest, proxy_env)
    assert [p.returncode for p in procs] == [0, 0, 0], outputs
    assert tree(dest / "m") == V2
    assert verify(dest, deep=True)[0].problems == []
    assert dict(proxy.file_gets()) == expected_gets(bucket, v2)


def test_concurrent_pulls_are_correct_even_without_the_lock(two_versions, bucket, proxy, proxy_env):
    """flock can silently succeed for everyone on some NFS mounts: correctness must not need it."""
    dest, v1, v2 = two_versions
    # A rendezvous, not a slow proxy: config.yaml is answered only once all three processes asked for
    # it, so they overlap whatever the load (a process that starts late on a busy machine used to find
    # the version done, and the overlap precondition below failed).
    proxy.gates.append(Gate(file_named("config.yaml"), parties=3))
    procs, outputs = start_pulls(3, bucket, dest, {**proxy_env, "MODELSYNC_NO_LOCK": "1"})
    assert [p.returncode for p in procs] == [0, 0, 0], outputs
    assert tree(dest / "m") == V2
    assert verify(dest, deep=True)[0].problems == []
    assert part_files(dest) == []
    gets = proxy.file_gets()
    expected = expected_gets(bucket, v2)
    # Without the lock, a pull may find shared.bin's ctime moved by another pull's hard link before v1's record
    # follows it, and download it instead of linking it: duplicate work, never a wrong byte, at most once a pull.
    shared = f"/{bucket}/models/m/{v2}/files/shared.bin"
    allowed = {**expected, shared: max(1, -(-len(V2["shared.bin"]) // PART))}
    assert set(expected) <= set(gets) <= set(allowed)
    assert all(n <= 3 * allowed[k] for k, n in gets.items())
    assert all(expected[k] <= gets[k] for k in expected)
    # Precondition of this test: the processes really overlapped (without the lock they duplicate work).
    assert sum(gets.values()) > sum(expected.values())


def test_two_pulls_linking_the_same_file_at_once_leave_no_temp(two_versions, client, bucket, monkeypatch):
    """The race behind a `.part` left in tmp/ by concurrent pulls without the lock: both pulls find
    shared.bin unchanged in v1 and hard-link it to a temp file of their own before either renames it.
    The second rename is then of a link over the same file, which rename(2) makes a no-op that
    succeeds and leaves the source name: the temp must not survive it."""
    import threading

    dest, v1, v2 = two_versions
    monkeypatch.setenv("MODELSYNC_NO_LOCK", "1")
    both_checked = threading.Barrier(2, timeout=30)  # both pulls past link_file's stat check
    real_link = os.link

    def link_once_both_checked(*args, **kwargs):
        both_checked.wait()
        return real_link(*args, **kwargs)

    monkeypatch.setattr(os, "link", link_once_both_checked)
    failures = []

    def one_pull():
        try:
            pull(client, bucket, dest, concurrency=2)
        except Exception as exc:  # reported below, with the other thread's
            failures.append(exc)

    threads = [threading.Thread(target=one_pull) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert failures == []
    assert tree(dest / "m") == V2
    assert verify(dest, deep=True)[0].problems == []
    assert part_files(dest) == []


def test_prune_local_during_pulls_without_the_lock_keeps_what_they_build(two_versions, bucket, proxy, proxy_env):
    """Review finding 5: `prune --local` used to remove the version a pull was still building.
    MODELSYNC_NO_LOCK=1 stands in for NFS mounts where flock silently succeeds for everyone."""
    dest, v1, v2 = two_versions
    env = {**proxy_env, "MODELSYNC_NO_LOCK": "1"}
    vdir = LocalStore(dest).version_dir("m", v2)
    # Both pulls are held mid-way (config.yaml's GET waits in the proxy) until the first prune is done:
    # on a busy machine the prune process used to start only after the pulls had finished.
    gate = Gate(file_named("config.yaml"))
    proxy.gates.append(gate)
    pulls = [popen_cli("pull", "--bucket", bucket, "--dest", dest, "--concurrency", "2", env=env) for _ in range(2)]
    assert gate.wait_for_arrivals(2), [p.communicate() for p in pulls]
    for p in pulls:
        wait_until_mid_way(p, dest, vdir)
    prunes = [run_cli("prune", "--local", "--dest", dest, env=env)]
    assert all(p.poll() is None for p in pulls)  # the prune ran while both pulls were building v2
    gate.release()
    while any(p.poll() is None for p in pulls):
        prunes.append(run_cli("prune", "--local", "--dest", dest, env=env))
    outputs = [p.communicate(timeout=60) for p in pulls]
    assert [p.returncode for p in pulls] == [0, 0], outputs
    assert tree(dest / "m") == V2
    assert verify(dest, deep=True)[0].problems == []
    assert prunes and all(p.returncode == 0 for p in prunes), [p.stderr for p in prunes]
    assert f"kept m@{v2}: a running pull is using it" in prunes[0].stdout
    assert not any(f"removed m@{v2}" in p.stdout for p in prunes)
    # Once the pulls are done, the old version goes and the pins are gone with their processes.
    run_cli("prune", "--local", "--dest", dest, env=env, check=True)
    assert LocalStore(dest).version_dirs("m") == [v2]
    assert [n for n in os.listdir(dest / ".modelsync" / "tmp")] == []


@pytest.mark.parametrize("case", ["new version", "back to a recorded version"])
def test_a_prune_landing_just_before_the_switch_keeps_the_version(two_versions, client, bucket, monkeypatch, case):
    """Review finding 5: a prune between writing the record and switching left a dangling link."""
    from modelsync.prune import prune_local

    dest, v1, v2 = two_versions
    if case == "back to a recorded version":
        pull(client, bucket, dest)  # v2 current, v1 recorded
    monkeypatch.setenv("MODELSYNC_NO_LOCK", "1")  # the prune runs inside the pull's lock otherwise
    real_switch = LocalStore.switch
    reports = []

    def prune_then_switch(self, name, version):
        reports.append(prune_local(dest))
        real_switch(self, name, version)

    monkeypatch.setattr(LocalStore, "switch", prune_then_switch)
    target = v2 if case == "new version" else v1
    pull(client, bucket, dest, [f"m@{target}"])
    assert tree(dest / "m") == (V2 if target == v2 else V1)
    assert f"m@{target}" in reports[0].in_use and f"m@{target}" not in reports[0].removed


def test_a_version_removed_before_the_switch_fails_the_pull_and_keeps_the_old_link(
        two_versions, client, bucket, monkeypatch):
    """What is left of the race without a lock: a removal the pin cannot prevent (a prune that
    read the pins just before they existed) is caught once switched, the link goes back to the
    old version, and the pull fails in one line."""
    from modelsync.errors import JobFailed

    dest, v1, v2 = two_versions
    real_switch = LocalStore.switch

    removed = []

    def remove_then_switch(self, name, version):
        if not removed:  # only the switch to the new version; the switch back is left alone
            removed.append(version)
            self.remove_version(name, version)
        real_switch(self, name, version)

    monkeypatch.setattr(LocalStore, "switch", remove_then_switch)
    with pytest.raises(JobFailed, match=f"version {v2} of m was removed from .* while it was being pulled"):
        pull(client, bucket, dest)
    assert removed == [v2] and os.readlink(dest / "m").endswith(v1)
    assert_old_version_intact(dest)


def wait_until_mid_way(proc, dest, vdir):
    """Until some files of the new version are renamed into place and others are still temp files."""
    deadline = time.monotonic() + 20
    while not (os.path.isdir(vdir) and os.listdir(vdir) and part_files(dest)):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.005)


@pytest.mark.parametrize("signum, code, name", [(signal.SIGTERM, 143, "SIGTERM"), (signal.SIGINT, 130, "SIGINT")])
def test_a_stopped_pull_ends_within_a_chunk_keeps_the_old_version_and_leaves_no_temp_file(
        two_versions, bucket, proxy, proxy_env, signum, code, name):
    """ECS stops tasks with SIGTERM (SIGKILL after the stop timeout). A pull used to ignore it (PID 1)
    or, on Ctrl-C, let every download finish first."""
    dest, v1, v2 = two_versions
    proxy.bytes_per_second = 1_000_000  # the rest of V2 would take several seconds more
    vdir = LocalStore(dest).version_dir("m", v2)
    proc = popen_cli("pull", "--bucket", bucket, "--dest", dest, "--concurrency", "2", env=proxy_env)
    wait_until_mid_way(proc, dest, vdir)
    proc.send_signal(signum)
    _out, err = proc.communicate(timeout=15)

    assert proc.returncode == code, err
    assert f"modelsync: pull stopped by {name} before it finished: run it again to finish" in err
    assert "Traceback" not in err
    assert part_files(dest) == []  # the stopping process removed its own temp files
    assert_old_version_intact(dest)
    # It did not let the download run to the end first: the queued files and parts were never requested.
    assert sum(proxy.file_gets().values()) < sum(expected_gets(bucket, v2).values())

    proxy.bytes_per_second = None
    run_cli("pull", "--bucket", bucket, "--dest", dest, env=proxy_env, check=True)
    assert tree(dest / "m") == V2
