"""Safe extraction of real zip files built by the tests, and locating the model folder."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import zipfile

import pytest

from modelsync.errors import ModelsyncError
from modelsync.seed.extract import UnsafeArchive, extract_zip
from modelsync.seed.locate import locate_model_dir
from tools.fake_zenodo import FAMILY_FILES, make_zip

M2F = ((("config.yaml",), ("model.pth", "model_final.pth")))
MB = 1024 * 1024


def write(tmp_path, data: bytes, name="a.zip"):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def extract(tmp_path, data: bytes, *, max_bytes=10 * MB):
    return extract_zip(write(tmp_path, data), tmp_path / "out", max_bytes=max_bytes)


def test_extracts_files_and_folders(tmp_path):
    written = extract(tmp_path, make_zip({"m/config.yaml": b"c", "m/sub/w.pth": b"weights"}))
    assert written == 8
    assert (tmp_path / "out/m/config.yaml").read_bytes() == b"c"
    assert (tmp_path / "out/m/sub/w.pth").read_bytes() == b"weights"


@pytest.mark.parametrize("name, problem", [
    ("/etc/passwd", "has an absolute path"),
    ("C:/Windows/evil", "has an absolute path"),
    ("../evil", "escapes the archive tree with '..'"),
    ("m/../../evil", "escapes the archive tree with '..'"),
    ("m\\..\\..\\evil", "escapes the archive tree with '..'"),
])
def test_refuses_paths_escaping_the_tree(tmp_path, name, problem):
    with pytest.raises(UnsafeArchive, match=problem):
        extract(tmp_path, make_zip({"m/ok": b"ok", name: b"x"}))
    assert not (tmp_path / "out").exists()  # checked before anything is written
    assert not (tmp_path / "evil").exists()


@pytest.mark.parametrize("target", ["/etc/passwd", "../../outside", "../.."])
def test_refuses_links_pointing_outside(tmp_path, target):
    with pytest.raises(UnsafeArchive, match=r"link 'm/l' points outside the archive tree"):
        extract(tmp_path, make_zip({"m/f": b"x"}, links={"m/l": target}))
    assert not (tmp_path / "out").exists()


def test_refuses_a_link_to_its_own_parent(tmp_path):
    with pytest.raises(UnsafeArchive, match="points to its own parent"):
        extract(tmp_path, make_zip({"m/f": b"x"}, links={"m/sub/l": ".."}))


def test_links_inside_the_tree_become_plain_copies(tmp_path):
    extract(tmp_path, make_zip({"m/model_final.pth": b"w", "m/d/x": b"d"},
                               links={"m/model.pth": "model_final.pth", "m/e": "d/x", "m/chain": "model.pth",
                                      "m/new/dir/y": "../../d/x"}))
    out = tmp_path / "out/m"
    for path in (out / "model.pth", out / "chain", out / "e", out / "new/dir/y"):
        assert path.is_file() and not path.is_symlink()
    assert (out / "chain").read_bytes() == b"w"


def test_refuses_archive_expanding_beyond_the_bound(tmp_path):
    data = make_zip({"big.bin": b"\0" * (2 * MB)})  # compresses to a few KB
    assert len(data) < 20_000
    with pytest.raises(UnsafeArchive, match=r"expands to 2097152 bytes on disk .*, more than the bound of 1048576"):
        extract(tmp_path, data, max_bytes=MB)


def test_headers_understating_sizes_cannot_slip_past_the_bound(tmp_path):
    data = bytearray(make_zip({"big.bin": b"\0" * (2 * MB)}))
    # Rewrite the declared uncompressed size (local header and central directory) to 10 bytes.
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as zf:
        info = zf.getinfo("big.bin")
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        at = bytes(data).index(signature)
        data[at + offset: at + offset + 4] = (10).to_bytes(4, "little")
    assert info.file_size == 2 * MB
    # zipfile reads only the declared 10 bytes, then the CRC check fails.
    with pytest.raises(UnsafeArchive, match=r"entry 'big.bin' cannot be read \(Bad CRC-32"):
        extract(tmp_path, bytes(data), max_bytes=MB)
    assert not (tmp_path / "out").exists()


def test_refuses_duplicate_entries(tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf, pytest.warns(UserWarning):
        zf.writestr("m/a", b"1")
        zf.writestr("m/a", b"2")
    with pytest.raises(UnsafeArchive, match="appears twice"):
        extract(tmp_path, buffer.getvalue())


def test_not_a_zip_is_a_clear_error(tmp_path):
    with pytest.raises(UnsafeArchive, match=r"a.zip: not a valid zip archive .*re-run the seed"):
        extract(tmp_path, b"<html>rate limited</html>")


# -- locating the model folder ----------------------------------------------------------------

def tree(root, files):
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def test_locates_a_top_level_folder(tmp_path):
    tree(tmp_path, {f"SEG_M2F_WS2/{k}": v for k, v in FAMILY_FILES["m2f"].items()})
    assert locate_model_dir(tmp_path, M2F, label="x") == tmp_path / "SEG_M2F_WS2"


def test_locates_files_at_the_root_and_accepts_either_checkpoint_name(tmp_path):
    tree(tmp_path, {"config.yaml": b"c", "model.pth": b"w", "__MACOSX/x/config.yaml": b"c"})
    assert locate_model_dir(tmp_path, M2F, label="x") == tmp_path


def test_prefers_the_shallowest_complete_folder(tmp_path):
    tree(tmp_path, {"m/config.yaml": b"c", "m/model.pth": b"w", "m/old/config.yaml": b"c", "m/old/model.pth": b"w"})
    assert locate_model_dir(tmp_path, M2F, label="x") == tmp_path / "m"


def test_two_complete_folders_at_the_same_depth_are_ambiguous(tmp_path):
    tree(tmp_path, {"a/config.yaml": b"c", "a/model.pth": b"w", "b/config.yaml": b"c", "b/model.pth": b"w"})
    with pytest.raises(ModelsyncError, match=r"several folders hold a complete model \(a, b\)"):
        locate_model_dir(tmp_path, M2F, label="x")


def test_missing_required_file_names_the_closest_folder_and_what_is_missing(tmp_path):
    tree(tmp_path, {"m/config.yaml": b"c", "m/notes.txt": b"n"})
    with pytest.raises(ModelsyncError, match=r"SEG: no folder .* closest is 'm', missing model.pth or model_final.pth"):
        locate_model_dir(tmp_path, M2F, label="SEG")


def test_an_empty_required_file_does_not_count(tmp_path):
    tree(tmp_path, {"m/config.yaml": b"c", "m/model.pth": b""})
    with pytest.raises(ModelsyncError, match="missing model.pth or model_final.pth"):
        locate_model_dir(tmp_path, M2F, label="x")


def test_link_copies_count_against_the_bound(tmp_path):
    data = make_zip({"m/w.bin": b"\1" * (600 * 1024)}, links={"m/a": "w.bin", "m/b": "w.bin"})
    with pytest.raises(UnsafeArchive, match=r"expands to 1847296 bytes on disk \(each file and folder counts at least "
                                            r"4096 bytes, 1228800 of them for copies of its 2 links\), more than the "
                                            r"bound of 1048576 bytes"):
        extract(tmp_path, data, max_bytes=MB)
    assert not (tmp_path / "out").exists()


def test_refuses_special_files(tmp_path):
    import stat

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        info = zipfile.ZipInfo("m/fifo")
        info.external_attr = (stat.S_IFIFO | 0o644) << 16
        zf.writestr(info, b"")
    with pytest.raises(UnsafeArchive, match="'m/fifo' is a special file"):
        extract(tmp_path, buffer.getvalue())


# -- hostile archives (security review, finding A) ----------------------------------------------

def _link_zip(files: dict[str, bytes], links: dict[str, str]) -> bytes:
    return make_zip(files, links=links)


def doubling_links(levels: int) -> bytes:
    """d0/f, then d<i>/a and d<i>/b both linking to d<i-1>: 2**levels files from a few entries."""
    links = {}
    for i in range(1, levels + 1):
        links[f"d{i}/a"] = f"../d{i - 1}"
        links[f"d{i}/b"] = f"../d{i - 1}"
    return _link_zip({"d0/f": b""}, links)


def test_links_to_folders_are_refused_so_a_tiny_archive_cannot_multiply_files(tmp_path):
    data = doubling_links(10)  # 1024 files and 2047 folders if materialised
    assert len(data) < 3000
    with pytest.raises(UnsafeArchive, match=r"^a\.zip: link 'd1/a' points to a folder \('d0'\); links to folders "
                                            r"are refused"):
        extract_zip(write(tmp_path, data), tmp_path / "out", max_bytes=MB, max_files=500)
    assert not (tmp_path / "out").exists()


def test_every_file_costs_at_least_one_block(tmp_path):
    # 300 links to one empty file: 301 files of 0 bytes, but 301 blocks of 4 KiB on disk.
    data = _link_zip({"m/f": b""}, {f"m/l{i}": "f" for i in range(300)})
    with pytest.raises(UnsafeArchive, match=r"^a\.zip: expands to \d+ bytes on disk .* more than the bound of "
                                            r"1048576 bytes; raise max_extracted_mb"):
        extract(tmp_path, data, max_bytes=MB)
    assert not (tmp_path / "out").exists()


def test_many_empty_files_are_charged_per_block(tmp_path):
    data = make_zip({f"m/{i}": b"" for i in range(300)})
    with pytest.raises(UnsafeArchive, match=r"expands to \d+ bytes on disk"):
        extract(tmp_path, data, max_bytes=MB)


def test_file_count_limit_counts_files_links_and_folders(tmp_path):
    # 10 entries in the archive, but 40 folders: every entry is 4 folders deep.
    data = make_zip({f"x{i}/a/b/c/f": b"" for i in range(10)})
    with pytest.raises(UnsafeArchive, match=r"^a\.zip: holds 50 files and folders, more than the limit of 30; "
                                            r"raise max_extracted_files"):
        extract_zip(write(tmp_path, data), tmp_path / "out", max_bytes=10 * MB, max_files=30)
    assert not (tmp_path / "out").exists()
    # More entries than the limit: refused from the archive's end record, before zipfile lists them.
    with pytest.raises(UnsafeArchive, match=r"holds 40 files and folders, more than the limit of 30"):
        extract_zip(write(tmp_path, make_zip({f"{i}": b"" for i in range(40)})), tmp_path / "out",
                    max_bytes=10 * MB, max_files=30)
    # Links count as the files they become, and the folder m counts too: 30 entries, 31 on disk.
    data = _link_zip({"m/f": b"w"}, {f"m/l{i}": "f" for i in range(29)})
    with pytest.raises(UnsafeArchive, match=r"holds 31 files and folders, more than the limit of 30"):
        extract_zip(write(tmp_path, data), tmp_path / "out", max_bytes=10 * MB, max_files=30)


def test_a_large_link_entry_is_refused_before_its_body_is_read(tmp_path):
    import tracemalloc

    import stat

    body = 64 * MB  # compresses to about 64 KiB
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("m/f", b"w")
        info = zipfile.ZipInfo("m/l")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, b"\0" * body, compress_type=zipfile.ZIP_DEFLATED)
    data = buffer.getvalue()
    assert len(data) < MB
    tracemalloc.start()
    try:
        with pytest.raises(UnsafeArchive, match=rf"^a\.zip: link 'm/l' is {body} bytes; a link is at most 4096 bytes"):
            extract(tmp_path, data, max_bytes=1024 * MB)  # within the size bound: the link check must stop it
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * MB, f"peak {peak} bytes: the link body was read"


def test_link_chains_and_loops(tmp_path):
    out = tmp_path / "out"
    extract(tmp_path, _link_zip({"m/w": b"weights"}, {"m/c": "b", "m/b": "a", "m/a": "w"}))
    assert {p.name: p.read_bytes() for p in (out / "m").iterdir()} == {n: b"weights" for n in "wabc"}
    (tmp_path / "loop").mkdir()
    with pytest.raises(UnsafeArchive, match=r"link 'm/a' is part of a loop of links"):
        extract(tmp_path / "loop", _link_zip({"m/w": b"w"}, {"m/a": "b", "m/b": "a"}))


# A central directory bigger than its end record says: what the refusal costs, measured in a child
# process (bytes it read, its peak memory) under a 1 GiB address-space limit.
HOSTILE_CHILD = r"""
import json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
from modelsync.seed.extract import extract_zip

def proc(name, field):
    return int(next(line.split()[1] for line in open(f"/proc/self/{name}") if line.startswith(field)))

before = proc("io", "rchar:")
try:
    extract_zip(sys.argv[1], sys.argv[2], max_bytes=1 << 30)
    outcome = "extracted"
except Exception as exc:
    outcome = f"{type(exc).__name__}: {exc}"
print(json.dumps({"outcome": outcome, "read": proc("io", "rchar:") - before, "peak_kib": proc("status", "VmHWM:")}))
"""


def hostile_zip(path, entries: int) -> int:
    """One stored file, then `entries` central-directory entries for it; the end record states one. Written
    in slices: 47 bytes an entry (46-byte header and a one-byte name)."""
    import struct

    local = struct.pack("<4s2B4HL2L2H", b"PK\x03\x04", 20, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0) + b"a"
    entry = struct.pack("<4s4B4HL2L5H2L", b"PK\x01\x02", 20, 3, 20, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0) + b"a"
    with open(path, "wb") as out:
        out.write(local)
        for start in range(0, entries, 100_000):
            out.write(entry * min(100_000, entries - start))
        out.write(struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 1, 1, len(entry) * entries, len(local), 0))
    return len(entry) * entries


@pytest.mark.skipif(not os.path.exists("/proc/self/io"), reason="needs Linux /proc/self/io")
@pytest.mark.parametrize(("entries", "problem"), [
    # Issue 21: this one cost 17.7 s and 1.2 GiB before it was refused; now its size alone refuses it.
    (2_000_000, r"its central directory is 94000000 bytes, more than 10000 files and folders can need"),
    # Within the size bound: counting the entries' fixed headers stops at the second one.
    (1_000_000, r"its end record states 1 entries but its central directory holds more than 1"),
])
def test_a_central_directory_bigger_than_its_end_record_says_is_refused_before_it_is_read(
        tmp_path, entries, problem):
    archive = tmp_path / "hostile.zip"
    directory = hostile_zip(archive, entries)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}

    proc = subprocess.run([sys.executable, "-c", HOSTILE_CHILD, str(archive), str(tmp_path / "out")],
                          capture_output=True, text=True, env=env, timeout=300)

    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["read"] < MB < directory // 40, result  # the end record and a few headers, not the directory
    assert result["peak_kib"] < 200 * 1024, result  # the interpreter and modelsync's imports, nothing per entry
    assert re.match(rf"UnsafeArchive: hostile\.zip: {problem}", result["outcome"]), result["outcome"]
    assert not (tmp_path / "out").exists()
