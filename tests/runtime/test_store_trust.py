"""The store trusts nothing it did not create: links planted under .modelsync, a store someone else owns
or may write, and a model file rewritten in place with its mtime put back (store.py, storefs.py)."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from .helpers import PART, assert_one_line_error, popen_cli, publish_cli, random_bytes, run_cli, sha256

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give files to another uid")


def pulled(bucket, publish, tmp_path, model="m", files=None):
    publish(model, files or {"a.bin": b"a" * 100})
    dest = tmp_path / "d"
    run_cli("pull", "--bucket", bucket, "--dest", dest, "--model", model, check=True)
    return dest


def dead_pid() -> int:
    """The pid of a process that has exited (what a crashed pull leaves in its file names)."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


# Links planted under .modelsync ----------------------------------------------------------------------
def test_a_planted_partial_download_whose_data_is_a_link_is_refused_and_its_target_untouched(
        bucket, publish, tmp_path):
    """Issue 21: a planted partial/*.ranges plus a .part link made the next pull write the model into
    the link's target and exit 0."""
    big = random_bytes(3 * PART, 7)
    dest = pulled(bucket, publish, tmp_path, model="other")
    publish("m", {"big.bin": big})
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious")
    host = socket.gethostname().replace(".", "_") or "host"
    stem = f"{dest}/.modelsync/partial/{host}.{dead_pid()}.{'0' * 32}"
    with open(f"{stem}.ranges", "w") as handle:
        handle.write(f"{sha256(big)} {len(big)} {PART}\n")
    os.symlink(victim, f"{stem}.part")

    proc = run_cli("pull", "--bucket", bucket, "--dest", dest, "--model", "m", env={"MODELSYNC_PART_SIZE_MIB": "1"})

    assert victim.read_bytes() == b"precious"
    assert_one_line_error(proc, f"{stem}.part is a symbolic link", "remove it")
    assert proc.returncode == 2
    assert not os.path.lexists(dest / "m")


def test_prune_never_follows_a_link_in_versions_out_of_the_store(bucket, publish, tmp_path):
    """Issue 21: a link in versions/ made prune --local delete the directories it led to."""
    dest = pulled(bucket, publish, tmp_path)
    outside = tmp_path / "outside"
    for name in ("keep1", "keep2"):
        (outside / name).mkdir(parents=True)
        (outside / name / "data").write_text(name)
    os.symlink(outside, dest / ".modelsync" / "versions" / "evil")

    proc = run_cli("prune", "--local", "--dest", dest)

    assert sorted(os.listdir(outside)) == ["keep1", "keep2"]
    assert (outside / "keep1" / "data").read_text() == "keep1"
    assert_one_line_error(proc, f"{dest}/.modelsync/versions/evil is a symbolic link")
    assert proc.returncode == 2
    assert run_cli("verify", "--dest", dest).returncode == 2  # refused until the link is gone
    os.unlink(dest / ".modelsync" / "versions" / "evil")
    assert run_cli("prune", "--local", "--dest", dest).returncode == 0
    assert run_cli("verify", "--dest", dest).returncode == 0


@pytest.mark.parametrize("planted", ["locks/m.lock", "records/m", "versions/m", "tmp"])
def test_lock_record_and_other_links_create_nothing_elsewhere(bucket, publish, tmp_path, planted):
    """Issue 21: lock and record links made pull create files outside the store."""
    dest = pulled(bucket, publish, tmp_path, model="other")
    publish("m", {"a.bin": b"a" * 100})
    outside = tmp_path / "outside"
    outside.mkdir()
    link = dest / ".modelsync" / planted
    if link.is_dir():
        os.rmdir(link)
    os.symlink(outside / "target" if planted.endswith(".lock") else outside, link)

    proc = run_cli("pull", "--bucket", bucket, "--dest", dest, "--model", "m")

    assert os.listdir(outside) == []
    assert_one_line_error(proc, f"{link} is a symbolic link")
    assert proc.returncode == 2


# Links planted where a trusted pull keeps signatures and LATEST ----------------------------------------
def trusted_pull(dest, env, pub):
    return run_cli("pull", "--dest", dest, "--trust-key", pub, "--progress", "quiet", env=env)


def linked(dest) -> str:
    return os.path.basename(os.readlink(dest / "m"))


@pytest.mark.parametrize("planted", ["latest/m.json", "versions/m/{v}/model.sig", "records/m/{v}.sig"])
def test_a_link_where_a_trusted_pull_keeps_a_signature_is_refused_even_to_the_genuine_bytes(
        tmp_path, bucket, pem_keys, planted):
    """The kept LATEST statement, the version's OMS bundle and the manifest signature are read back through
    the store like its records: a link there is refused, never followed (the merge of issue21-signing's files
    into issue21-store's store; before, the first two were read with open())."""
    key, pub = pem_keys
    env = {"MODELSYNC_BUCKET": bucket}
    version = publish_cli(tmp_path, env, {"a.bin": b"a" * 100}, key)
    dest = tmp_path / "d"
    assert trusted_pull(dest, env, pub).returncode == 0
    link = dest / ".modelsync" / planted.format(v=version)
    genuine = link.read_bytes()
    outside = tmp_path / "outside"
    outside.write_bytes(genuine)
    link.unlink()
    link.symlink_to(outside)

    for proc in (trusted_pull(dest, env, pub), run_cli("verify", "--dest", dest, "--trust-key", pub, env=env)):
        assert_one_line_error(proc, f"{link} is a symbolic link")
        assert proc.returncode == 2
    assert outside.read_bytes() == genuine and linked(dest) == version


def test_a_kept_latest_replaced_by_a_link_to_an_older_statement_allows_no_rollback(
        tmp_path, bucket, pem_keys, s3_client):
    """A replayed LATEST plus a link at .modelsync/latest/m.json to the statement the store kept before: read
    through the link, the high-water mark would be the older one and the replay would be accepted."""
    key, pub = pem_keys
    env = {"MODELSYNC_BUCKET": bucket}
    publish_cli(tmp_path, env, {"a.bin": b"one"}, key)
    old_latest = s3_client.get_object(Bucket=bucket, Key="models/m/LATEST")["Body"].read()
    dest = tmp_path / "d"
    assert trusted_pull(dest, env, pub).returncode == 0
    kept = dest / ".modelsync" / "latest" / "m.json"
    older = tmp_path / "older.json"
    older.write_bytes(kept.read_bytes())
    v2 = publish_cli(tmp_path, env, {"a.bin": b"two"}, key)
    assert trusted_pull(dest, env, pub).returncode == 0 and linked(dest) == v2
    s3_client.put_object(Bucket=bucket, Key="models/m/LATEST", Body=old_latest)  # the replay
    kept.unlink()
    kept.symlink_to(older)

    proc = trusted_pull(dest, env, pub)

    assert_one_line_error(proc, f"{kept} is a symbolic link")
    assert proc.returncode == 2
    assert linked(dest) == v2


def test_a_link_for_the_latest_folder_makes_a_trusted_pull_write_nothing_elsewhere(tmp_path, bucket, pem_keys):
    """latest/ is one of the store's folders (0700, checked on open): a link there is refused before the
    statement is written, not followed out of the store."""
    key, pub = pem_keys
    env = {"MODELSYNC_BUCKET": bucket}
    publish_cli(tmp_path, env, {"a.bin": b"one"}, key)
    dest = tmp_path / "d"
    assert trusted_pull(dest, env, pub).returncode == 0
    assert mode(dest / ".modelsync" / "latest") == 0o700
    latest = dest / ".modelsync" / "latest"
    (latest / "m.json").unlink()
    latest.rmdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    latest.symlink_to(outside)
    publish_cli(tmp_path, env, {"a.bin": b"two"}, key)

    proc = trusted_pull(dest, env, pub)

    assert_one_line_error(proc, f"{latest} is a symbolic link")
    assert proc.returncode == 2
    assert os.listdir(outside) == []


# Who owns the store, and who may write it ------------------------------------------------------------
def test_a_new_store_is_private_where_it_can_be(bucket, publish, tmp_path):
    dest = pulled(bucket, publish, tmp_path)
    meta = dest / ".modelsync"
    # Others may only traverse .modelsync and versions/ (an app of another uid reads the models
    # through a view); what modelsync alone uses is 0700; nothing is writable but by the owner.
    assert {name: mode(meta / name) for name in ("", "tmp", "partial", "records", "locks", "versions")} == {
        "": 0o711, "tmp": 0o700, "partial": 0o700, "records": 0o700, "locks": 0o700, "versions": 0o711}
    for current, dirs, files in os.walk(dest):
        for name in dirs + files:
            path = os.path.join(current, name)
            assert os.path.islink(path) or not mode(path) & 0o022, path


def test_a_store_of_the_previous_version_is_accepted_read_only_and_tightened_by_a_writer(bucket, publish, tmp_path):
    """The EFS mirror seeded by the previous version: .modelsync and its directories 0755."""
    dest = pulled(bucket, publish, tmp_path)
    meta = dest / ".modelsync"
    for name in ("", "tmp", "partial", "records", "locks", "versions"):
        os.chmod(meta / name, 0o755)
    assert run_cli("verify", "--dest", dest).returncode == 0
    assert mode(meta) == 0o755 and mode(meta / "records") == 0o755  # a reader changes nothing
    run_cli("pull", "--bucket", bucket, "--dest", dest, check=True)
    assert mode(meta) == 0o711 and mode(meta / "records") == 0o700


@pytest.mark.parametrize("where", ["", "/.modelsync", "/.modelsync/records"])
@pytest.mark.parametrize("command", ["pull", "verify", "prune"])
def test_a_store_others_may_write_is_refused_in_one_line(bucket, publish, tmp_path, where, command):
    dest = pulled(bucket, publish, tmp_path)
    os.chmod(f"{dest}{where}", 0o777)
    args = {"pull": ["--bucket", bucket], "verify": [], "prune": ["--local"]}[command]

    proc = run_cli(command, "--dest", dest, *args)

    assert_one_line_error(proc, f"{dest}{where} is writable by group or others (mode 0777)", "chmod go-w")
    assert proc.returncode == 2


def test_a_shared_dest_with_the_sticky_bit_is_accepted(bucket, publish, tmp_path):
    """Like /tmp: others may add entries but cannot move or replace modelsync's."""
    dest = pulled(bucket, publish, tmp_path)
    os.chmod(dest, 0o1777)
    assert run_cli("verify", "--dest", dest).returncode == 0
    run_cli("pull", "--bucket", bucket, "--dest", dest, check=True)


@needs_root
@pytest.mark.parametrize("where", [".modelsync", ".modelsync/records", ".modelsync/records/m"])
@pytest.mark.parametrize("command", ["pull", "verify", "prune"])
def test_a_store_someone_else_owns_is_refused_in_one_line(bucket, publish, tmp_path, where, command):
    dest = pulled(bucket, publish, tmp_path)
    os.chown(dest / where, 54321, 54321)
    args = {"pull": ["--bucket", bucket], "verify": [], "prune": ["--local"]}[command]

    proc = run_cli(command, "--dest", dest, *args)

    assert_one_line_error(proc, f"{dest}/{where} is owned by uid 54321, not by this user (uid 0)")
    assert proc.returncode == 2


@needs_root
def test_a_record_someone_else_wrote_is_refused(bucket, publish, tmp_path):
    dest = pulled(bucket, publish, tmp_path)
    [record] = (dest / ".modelsync" / "records" / "m").glob("*.json")
    os.chown(record, 54321, 54321)
    proc = run_cli("verify", "--dest", dest)
    assert_one_line_error(proc, f"{record} is owned by uid 54321")
    assert proc.returncode == 2


# A model file rewritten in place -------------------------------------------------------------------
def readyz(dest) -> tuple[int, dict]:
    proc = popen_cli("serve", "--host", "127.0.0.1", "--port", "0", "--dest", dest)
    try:
        line = proc.stderr.readline()
        assert "listening on" in line, line
        port = int(line.split("127.0.0.1:")[1].split(",")[0])
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_a_file_rewritten_in_place_with_its_mtime_restored_is_caught_without_deep(bucket, publish, tmp_path):
    """Issue 21: such a file passed a warm pull, verify (what efs-mode init runs) and /readyz."""
    files = {"model.bin": random_bytes(200_000, 3), "config.yaml": b"a: 1\n"}
    dest = pulled(bucket, publish, tmp_path, files=files)
    path = dest / "m" / "model.bin"
    before = os.stat(path)
    time.sleep(0.05)  # ctime has the granularity of the kernel's coarse clock (a few ms)
    with open(path, "r+b") as handle:
        handle.seek(1000)
        handle.write(b"EVIL")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(path)
    # What the fix relies on: size, mtime and inode can be kept, the ctime cannot be set by any user.
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (before.st_size, before.st_mtime_ns, before.st_ino)
    assert after.st_ctime_ns != before.st_ctime_ns

    proc = run_cli("verify", "--dest", dest)
    assert proc.returncode == 1
    assert proc.stderr.startswith("m/model.bin: changed since it was verified: sha256 "), proc.stderr
    assert readyz(dest) == (503, {"ready": False, "problems": ["m: files-differ"]})

    warm = run_cli("pull", "--bucket", bucket, "--dest", dest, "--progress", "json", check=True)
    assert json.loads(warm.stdout.splitlines()[-1])["files"] == 1  # fetched again, the other one kept
    assert path.read_bytes() == files["model.bin"]
    assert run_cli("verify", "--dest", dest).returncode == 0
    assert readyz(dest) == (200, {"ready": True, "problems": []})


def test_records_of_the_previous_version_are_trusted_after_hashing_and_refreshed_by_a_pull(
        bucket, publish, tmp_path):
    """Records written before ctime was kept hold (size, mtime, inode): verify hashes those files instead of
    failing (the EFS mirror keeps serving until the next seed), and the next pull rewrites the records."""
    dest = pulled(bucket, publish, tmp_path, files={"a.bin": b"a" * 100, "b/c.bin": b"c" * 10})
    [path] = (dest / ".modelsync" / "records" / "m").glob("*.json")
    record = json.loads(path.read_text())
    record["stats"] = {p: [size, mtime, ino] for p, (size, mtime, _ctime, ino) in record["stats"].items()}
    path.write_text(json.dumps(record))

    assert run_cli("verify", "--dest", dest).returncode == 0
    warm = run_cli("pull", "--bucket", bucket, "--dest", dest, "--progress", "json", check=True)

    assert json.loads(warm.stdout.splitlines()[-1])["files"] == 0  # nothing downloaded
    assert all(len(key) == 4 for key in json.loads(path.read_text())["stats"].values())


def test_records_follow_the_ctime_that_linking_and_pruning_shared_files_moves(bucket, publish, tmp_path):
    """Linking a file into a new version moves its ctime: the older version's record is brought along, so
    a task pinned to it (efs mode) does not hash the shared files at every start."""
    from modelsync.store import LocalStore

    shared = random_bytes(300_000, 5)
    dest = pulled(bucket, publish, tmp_path, files={"weights.bin": shared, "config.yaml": b"v: 1\n"})
    old = os.readlink(dest / "m").rsplit("/", 1)[1]
    publish("m", {"weights.bin": shared, "config.yaml": b"v: 2\n"})
    run_cli("pull", "--bucket", bucket, "--dest", dest, check=True)
    new = os.readlink(dest / "m").rsplit("/", 1)[1]
    assert os.stat(dest / "m" / "weights.bin").st_nlink == 2  # linked, not downloaded again

    with LocalStore(dest) as store:
        for version in (old, new):
            assert store.stat_mismatches(store.read_record("m", version)) == [], version
    assert run_cli("verify", "--dest", dest, "--model", f"m@{old}").returncode == 0

    # Removing the old version moves the shared file's ctime again: the current record follows.
    assert f"removed m@{old}" in run_cli("prune", "--local", "--dest", dest, check=True).stdout
    with LocalStore(dest) as store:
        assert store.stat_mismatches(store.read_record("m", new)) == []


def test_pull_dry_run_reads_a_version_directory_without_a_record_and_writes_nothing(bucket, publish, tmp_path):
    """The plan checks files it has no record of by their bytes, through the same descriptors as pull,
    creating nothing (a folder that is missing means its files are to download)."""
    files = {"a.bin": b"a" * 100, "sub/dir/b.bin": b"b" * 10, "other/c.bin": b"c"}
    dest = pulled(bucket, publish, tmp_path, files=files)
    version = os.readlink(dest / "m").rsplit("/", 1)[1]
    os.unlink(dest / ".modelsync" / "records" / "m" / f"{version}.json")
    vdir = dest / ".modelsync" / "versions" / "m" / version
    os.unlink(vdir / "sub" / "dir" / "b.bin")
    os.rmdir(vdir / "sub" / "dir")
    before = sorted(str(p) for p in dest.rglob("*"))

    proc = run_cli("pull", "--bucket", bucket, "--dest", dest, "--dry-run", check=True)

    *planned, summary = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [(p["path"], p["action"]) for p in planned] == [("sub/dir/b.bin", "download")]
    assert summary["in_place_files"] == 2
    assert sorted(str(p) for p in dest.rglob("*")) == before
