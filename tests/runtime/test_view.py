"""Views: `modelsync view` and `pull` / `verify --view`, with real files, the real CLI in subprocesses
and the moto S3 server: layouts as the apps read them (MaskTerial, PaddleX, MODEL_PATH), atomic
refreshes under a reader, pinned versions, and a view left untouched by every error."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import threading

import pytest

from tools.fake_zenodo import FAMILY_FILES

from tests.consumers import maskterial_check_available_models, maskterial_construct_model_path

from .helpers import assert_one_line_error, popen_cli, run_cli

META = ".modelsync-view"
PADDLE_FILES = {
    "official_models/PP-OCRv6_medium_det/inference.yml": b"Global:\n  model_name: PP-OCRv6_medium_det\n",
    "official_models/PP-OCRv6_medium_det/inference.json": b"{}",
    "official_models/PP-OCRv6_medium_det/inference.pdiparams": b"\x00" * 4096,
    "official_models/PP-OCRv6_medium_rec/inference.yml": b"Global:\n  model_name: PP-OCRv6_medium_rec\n",
    "official_models/PP-OCRv6_medium_rec/inference.pdiparams": b"\x02" * 2048,
}
MASKTERIAL = {  # catalog name -> the family whose files it has
    "SEG_M2F_Synthetic_Data": "m2f", "SEG_M2F_GrapheneL": "m2f", "SEG_M2F_hBN_Thin": "m2f",
    "CLS_AMM_GrapheneL": "amm", "CLS_AMM_hBN_Thin": "amm", "CLS_GMM_GrapheneL": "gmm",
    "PP_L2_material_agnostic": "l2",
}


def marker(tag: str) -> dict[str, bytes]:
    return {"marker.txt": tag.encode(), "sub/weights.bin": tag.encode() * 100}


def pull(bucket, dest, *models: str, extra=(), env=None, check=True):
    args = [a for m in models for a in ("--model", m)]
    return run_cli("pull", "--bucket", bucket, "--dest", dest, "--progress", "quiet", *args, *extra,
                   env=env, check=check)


def view(view_dir, dest, layout: str, *models: str, extra=(), env=None, check=True):
    args = [a for m in models for a in ("--model", m)]
    return run_cli("view", view_dir, "--dest", dest, "--layout", layout, *args, *extra, env=env, check=check)


def summary(proc) -> dict:
    """The JSON summary `view` prints when stdout is not a terminal."""
    found = [json.loads(l) for l in proc.stdout.splitlines() if l.startswith("{") and '"action": "view"' in l]
    assert len(found) == 1, proc.stdout
    return found[0]


def snapshot(root) -> dict:
    """Everything under root without following links: kind, link target or bytes, and mode."""
    found = {}
    for current, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(current, name)
            st = os.lstat(path)
            rel = os.path.relpath(path, root)
            if stat.S_ISLNK(st.st_mode):
                found[rel] = ("link", os.readlink(path))
            elif stat.S_ISDIR(st.st_mode):
                found[rel] = ("dir", stat.S_IMODE(st.st_mode))
            elif name != "lock":
                with open(path, "rb") as handle:
                    found[rel] = ("file", handle.read())
    return found


def app_tree(root) -> dict[str, bytes]:
    """What an app sees: every file under root through the links, modelsync's own state left out."""
    found = {}
    for current, dirs, files in os.walk(root, followlinks=True):
        dirs[:] = [d for d in dirs if d != META]
        for name in files:
            path = os.path.join(current, name)
            with open(path, "rb") as handle:
                found[os.path.relpath(path, root)] = handle.read()
    return found


def version_dir(dest, name: str, version: str) -> str:
    return os.path.join(os.fspath(dest), ".modelsync", "versions", name, version)


# -- the layouts as their apps read them ----------------------------------------------------------------------

def test_flat_view_links_absolute_version_directories_through_one_current_link(bucket, publish, tmp_path):
    versions = {name: publish(name, marker(name)) for name in ("alpha", "beta")}
    dest, out = tmp_path / "models", tmp_path / "view"
    pull(bucket, dest, "alpha", "beta")
    proc = view(out, dest, "flat")  # no --model: every model installed in dest
    result = summary(proc)
    assert result["models"] == [f"alpha@{versions['alpha']}", f"beta@{versions['beta']}"]
    assert result["links"] == {n: version_dir(dest, n, v) for n, v in versions.items()}
    assert result["app_environment"] == {"MODEL_PATH": str(out)} and result["changed"] is True
    # Top-level entries: relative links through `current`; inside: absolute links to the version directories.
    for name, version in versions.items():
        assert os.readlink(out / name) == f"{META}/current/{name}"
        inside = out / META / result["generation"] / name
        assert os.readlink(inside) == version_dir(dest, name, version)
    assert os.readlink(out / META / "current") == result["generation"]
    # MODEL_PATH apps open $MODEL_PATH/<NAME>/...
    assert app_tree(out) == {f"{n}/{p}": c for n in versions for p, c in marker(n).items()}
    assert sorted(os.listdir(out)) == [META, "alpha", "beta"]

    again = summary(view(out, dest, "flat"))  # nothing changed: the same generation, nothing rebuilt
    assert again["changed"] is False and again["generation"] == result["generation"]


def test_maskterial_server_finds_every_model_and_file_through_the_view(bucket, publish, tmp_path):
    for name, family in MASKTERIAL.items():
        publish(name, FAMILY_FILES[family])
    dest, data_models = tmp_path / "models", tmp_path / "maskterial" / "data" / "models"
    pull(bucket, dest, *MASKTERIAL)
    view(data_models, dest, "maskterial", *MASKTERIAL)

    seg, cls, pp = (os.fspath(data_models / d) for d in
                    ("segmentation_models", "classification_models", "postprocessing_models"))
    assert maskterial_check_available_models(seg) == ["M2F-GrapheneL", "M2F-Synthetic_Data", "M2F-hBN_Thin"]
    assert maskterial_check_available_models(cls) == ["AMM-GrapheneL", "AMM-hBN_Thin", "GMM-GrapheneL"]
    assert maskterial_check_available_models(pp) == ["L2-material_agnostic"]
    required = {"M2F": [("config.yaml",), ("model.pth", "model_final.pth")],
                "AMM": [("loc.npy",), ("cov.npy",), ("model.pth",), ("meta_data.json",)],
                "GMM": [("contrast_dict.json",)], "L2": [("model.joblib",)]}
    for category in (seg, cls, pp):
        for model in maskterial_check_available_models(category):
            folder = maskterial_construct_model_path(category, model)
            for alternatives in required[model.split("-", 1)[0]]:
                assert any(os.path.isfile(os.path.join(folder, f)) for f in alternatives), (model, alternatives)
    pretrained = data_models / "segmentation_models" / "M2F" / "Synthetic_Data" / "model_final.pth"
    assert pretrained.read_bytes() == FAMILY_FILES["m2f"]["model_final.pth"]
    # The server lists data/models/<category>/<TYPE>: nothing there may be a plain file.
    for category in (seg, cls, pp):
        for model_type in os.listdir(category):
            assert all(os.path.isdir(os.path.join(category, model_type, n))
                       for n in os.listdir(os.path.join(category, model_type)))


def test_paddlex_layout_is_a_writable_cache_home_of_the_pulled_models_and_relinks_on_a_new_version(
        bucket, publish, tmp_path):
    v1 = publish("paddleocr", PADDLE_FILES)
    dest, cache = tmp_path / "models", tmp_path / "paddlex"
    proc = pull(bucket, dest, extra=("--view", cache, "--layout", "paddlex"))
    result = summary(proc)
    assert result["app_environment"] == {"PADDLE_PDX_CACHE_HOME": str(cache)} and result["app_writable"] is True
    assert stat.S_IMODE(os.stat(cache).st_mode) == 0o1777  # PaddleX (any uid) writes temp/, locks/ ... here
    # PaddleX finds a model with os.path.exists(<cache>/official_models/<name>) and reads its files.
    for model in ("PP-OCRv6_medium_det", "PP-OCRv6_medium_rec"):
        assert os.path.exists(cache / "official_models" / model)
        assert os.readlink(cache / META / "current" / "official_models" / model) == \
            os.path.join(version_dir(dest, "paddleocr", v1), "official_models", model)
    assert (cache / "official_models" / "PP-OCRv6_medium_det" / "inference.pdiparams").read_bytes() == b"\x00" * 4096
    for scratch in ("temp", "locks", "func_ret", "fonts"):  # what PaddleX writes at import (and lazily)
        (cache / scratch).mkdir()
        (cache / scratch / "x").write_bytes(b"app data")

    # A new version moves dest/paddleocr; an app started before keeps the version it started with.
    v2 = publish("paddleocr", {**PADDLE_FILES, "official_models/PP-OCRv6_medium_det/inference.pdiparams": b"\x01" * 8})
    pull(bucket, dest)
    assert (cache / "official_models" / "PP-OCRv6_medium_det" / "inference.pdiparams").read_bytes() == b"\x00" * 4096
    # The next init step (a new task) relinks the new version; what the app wrote stays.
    pull(bucket, dest, extra=("--view", cache, "--layout", "paddlex"))
    assert os.readlink(cache / META / "current" / "official_models" / "PP-OCRv6_medium_det") == \
        os.path.join(version_dir(dest, "paddleocr", v2), "official_models", "PP-OCRv6_medium_det")
    assert (cache / "official_models" / "PP-OCRv6_medium_det" / "inference.pdiparams").read_bytes() == b"\x01" * 8
    assert sorted(os.listdir(cache)) == [META, "fonts", "func_ret", "locks", "official_models", "temp"]
    assert all((cache / s / "x").read_bytes() == b"app data" for s in ("temp", "locks", "func_ret", "fonts"))


def test_several_paddleocr_models_fill_official_models_but_never_with_the_same_entry(bucket, publish, tmp_path):
    publish("paddleocr", PADDLE_FILES)
    publish("paddleocr-en", {"official_models/en_PP-OCRv6_rec/inference.yml": b"Global: {}\n"})
    publish("paddleocr-dup", {"official_models/PP-OCRv6_medium_det/inference.yml": b"other\n"})
    dest, cache = tmp_path / "models", tmp_path / "paddlex"
    pull(bucket, dest, "paddleocr", "paddleocr-en", "paddleocr-dup")
    view(cache, dest, "paddlex", "paddleocr", "paddleocr-en")
    assert sorted(os.listdir(cache / "official_models")) == \
        ["PP-OCRv6_medium_det", "PP-OCRv6_medium_rec", "en_PP-OCRv6_rec"]
    before = snapshot(cache)
    proc = view(cache, dest, "paddlex", "paddleocr", "paddleocr-dup", check=False)
    assert proc.returncode == 2
    assert_one_line_error(proc, "layout 'paddlex': models 'paddleocr' and 'paddleocr-dup' both land on "
                                "'official_models/PP-OCRv6_medium_det'")
    assert snapshot(cache) == before


def test_an_app_of_another_uid_can_write_the_top_of_a_writable_view_but_not_modelsync_entries(bucket, publish):
    if os.geteuid() != 0:
        pytest.skip("needs root to run the app as another uid")
    python = next((p for p in (sys.executable, "/usr/bin/python3") if world_executable(p)), None)
    if python is None:
        pytest.skip("no Python that another uid may run")
    # pytest's own temp root is 0700: this test needs directories another uid can traverse.
    root = tempfile.mkdtemp(prefix="modelsync-view-uid-")
    try:
        os.chmod(root, 0o755)
        publish("paddleocr", PADDLE_FILES)
        dest, cache = os.path.join(root, "models"), os.path.join(root, "paddlex")
        pull(bucket, dest, "paddleocr", extra=("--view", cache, "--layout", "paddlex"))
        app = app_script(cache)
        proc = subprocess.run([python, "-I", "-c", app], capture_output=True, text=True, timeout=30,
                              preexec_fn=lambda: (os.setgid(54321), os.setuid(54321)))
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.split() == ["wrote-temp", "read-model", "cannot-write-generation", "cannot-remove-ours"]
        assert os.stat(os.path.join(cache, "temp", "x")).st_uid == 54321
    finally:
        shutil.rmtree(root, ignore_errors=True)


def world_executable(path: str) -> bool:
    """Can any uid run path (every directory on the way traversable by others)?"""
    real = os.path.realpath(path)
    if not os.path.isfile(real) or not os.stat(real).st_mode & 0o001:
        return False
    parent = os.path.dirname(real)
    while parent != os.path.dirname(parent):
        if not os.stat(parent).st_mode & 0o001:
            return False
        parent = os.path.dirname(parent)
    return True


def app_script(cache: str) -> str:
    """A stand-in for PaddleX at import: writes its scratch, reads a model, cannot touch modelsync's entries."""
    return f"""
import os
cache = {cache!r}
os.makedirs(os.path.join(cache, "temp"))
open(os.path.join(cache, "temp", "x"), "w").write("scratch")
print("wrote-temp")
open(os.path.join(cache, "official_models", "PP-OCRv6_medium_det", "inference.yml")).read()
print("read-model")
try:
    os.mkdir(os.path.join(cache, "official_models", "downloaded_by_the_app"))
except PermissionError:
    print("cannot-write-generation")
try:
    os.unlink(os.path.join(cache, "official_models"))
except PermissionError:
    print("cannot-remove-ours")
"""


# -- atomic refresh, stale entries, what the app wrote ----------------------------------------------------------

def test_a_reader_never_sees_a_mix_of_two_generations_or_a_missing_entry(bucket, publish, tmp_path):
    """Refreshes alternate between {X@v1, Y} and {X@v2, Z}; the reader loops over the view all the time."""
    v1 = publish("SEG_M2F_X", marker("v1"))
    publish("SEG_M2F_Y", marker("v1"))
    v2 = publish("SEG_M2F_X", marker("v2"))
    publish("SEG_M2F_Z", marker("v2"))
    dest, out = tmp_path / "models", tmp_path / "view"
    pull(bucket, dest, f"SEG_M2F_X@{v1}", "SEG_M2F_Y", "SEG_M2F_Z")
    pull(bucket, dest, f"SEG_M2F_X@{v2}")
    sets = [(f"SEG_M2F_X@{v1}", "SEG_M2F_Y"), (f"SEG_M2F_X@{v2}", "SEG_M2F_Z")]
    expected = {("v1", ("X", "Y")), ("v2", ("X", "Z"))}
    view(out, dest, "maskterial", *sets[0])
    m2f, models = out / "segmentation_models" / "M2F", out / "segmentation_models"

    seen, problems, stop = set(), [], threading.Event()
    reads = threading.Semaphore(0)

    def reader():
        while not stop.is_set():
            try:
                # One lookup each: the listing, and a file through the stable path, are always one generation's.
                listed = tuple(sorted(os.listdir(m2f)))
                tag = (m2f / "X" / "marker.txt").read_text()
                if listed not in {("X", "Y"), ("X", "Z")} or tag not in ("v1", "v2"):
                    problems.append(("mixed", listed, tag))
                # Resolved once, a generation is whole: its listing and every file in it agree.
                resolved = os.path.realpath(models)
                names = tuple(sorted(os.listdir(os.path.join(resolved, "M2F"))))
                tags = {open(os.path.join(resolved, "M2F", n, "marker.txt")).read() for n in names}
                if len(tags) != 1 or (tags.pop(), names) not in expected:
                    problems.append(("resolved", names, tags))
                seen.add(listed)
            except OSError as exc:
                problems.append(("missing", repr(exc)))
            reads.release()

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for i in range(8):
            reads.acquire()  # the reader has read the settled view at least once since the last refresh
            builder = popen_cli("view", out, "--dest", dest, "--layout", "maskterial",
                                *[a for m in sets[(i + 1) % 2] for a in ("--model", m)])
            out_text, err_text = builder.communicate(timeout=60)
            assert builder.returncode == 0, err_text
    finally:
        stop.set()
        thread.join(timeout=30)
    assert problems == []
    assert seen == {("X", "Y"), ("X", "Z")}
    # Old generations are removed: the current one and the one before it remain.
    generations = sorted(n for n in os.listdir(out / META) if n.startswith("gen-") and not n.endswith(".json"))
    assert len(generations) == 2 and os.readlink(out / META / "current") in generations


def test_a_refresh_removes_stale_entries_and_old_generations_and_keeps_what_the_app_wrote(
        bucket, publish, tmp_path):
    for name in ("alpha", "beta", "gamma"):
        publish(name, marker(name))
    dest, out = tmp_path / "models", tmp_path / "view"
    pull(bucket, dest, "alpha", "beta", "gamma")
    first = summary(view(out, dest, "flat", "alpha", "beta"))
    (out / "app.log").write_text("written by the app")
    (out / "cache").mkdir()
    (out / "cache" / "x.bin").write_bytes(b"\x00")
    os.symlink("alpha", out / "my-alias")  # a link the app made: not modelsync's, however it looks

    second = summary(view(out, dest, "flat", "alpha", "gamma"))
    assert second["removed"] == ["beta"]
    assert sorted(os.listdir(out)) == [META, "alpha", "app.log", "cache", "gamma", "my-alias"]
    assert (out / "app.log").read_text() == "written by the app" and (out / "cache" / "x.bin").read_bytes() == b"\x00"
    assert app_tree(out / "gamma") == marker("gamma")
    # What a builder killed half-way leaves behind (a partial generation, temp files) goes too.
    (out / META / "gen-20000101T000000Z-deadbeef" / "alpha").mkdir(parents=True)
    (out / META / ".gen-20000101T000000Z-deadbeef.json.tmp").write_text("{")
    os.symlink("gen-20000101T000000Z-deadbeef", out / META / ".current.0123")
    third = summary(view(out, dest, "flat", "gamma"))
    kept = sorted(n for n in os.listdir(out / META) if n != "lock")
    assert kept == sorted(["current", second["generation"], f"{second['generation']}.json",
                           third["generation"], f"{third['generation']}.json"])
    assert first["generation"] not in kept
    # Generation directories are read-only: an app cannot write into modelsync's part of the view.
    for current, dirs, _files in os.walk(out / META / third["generation"]):
        assert stat.S_IMODE(os.stat(current).st_mode) == 0o555


# -- pinned versions, and the efs mode's switching mirror ---------------------------------------------------------

def test_pinned_versions_and_a_mirror_switched_after_the_view_was_built(bucket, publish, tmp_path):
    v1 = publish("SEG_M2F_GrapheneL", marker("v1"))
    v2 = publish("SEG_M2F_GrapheneL", marker("v2"))
    dest, out = tmp_path / "mirror", tmp_path / "view"
    pull(bucket, dest, f"SEG_M2F_GrapheneL@{v1}")
    result = summary(view(out, dest, "maskterial", f"SEG_M2F_GrapheneL@{v1}"))
    assert result["links"] == {"segmentation_models/M2F/GrapheneL": version_dir(dest, "SEG_M2F_GrapheneL", v1)}
    served = app_tree(out)

    # The seeding task moves the mirror's link to LATEST under the running task.
    pull(bucket, dest)
    assert os.path.realpath(dest / "SEG_M2F_GrapheneL") == version_dir(dest, "SEG_M2F_GrapheneL", v2)
    assert app_tree(out) == served == {f"segmentation_models/M2F/GrapheneL/{p}": c for p, c in marker("v1").items()}
    # A pin builds that version whatever the link says; a bare name takes the version the link points to now.
    assert summary(view(out, dest, "maskterial", f"SEG_M2F_GrapheneL@{v1}"))["changed"] is False
    moved = summary(view(out, dest, "maskterial", "SEG_M2F_GrapheneL"))
    assert moved["models"] == [f"SEG_M2F_GrapheneL@{v2}"] and moved["changed"] is True
    assert (out / "segmentation_models" / "M2F" / "GrapheneL" / "marker.txt").read_text() == "v2"


def test_verify_checks_a_pinned_version_that_is_not_the_current_one(bucket, publish, tmp_path):
    v1 = publish("m", marker("v1"))
    v2 = publish("m", marker("v2"))
    dest, out = tmp_path / "mirror", tmp_path / "view"
    pull(bucket, dest, f"m@{v1}")
    pull(bucket, dest)  # the mirror's link is now at v2
    proc = run_cli("verify", "--dest", dest, "--model", f"m@{v1}", "--deep", "--view", out)
    assert proc.returncode == 0, proc.stderr
    assert f"m@{v1}: 2 files" in proc.stdout and ": ok" in proc.stdout
    assert (out / "m" / "marker.txt").read_text() == "v1"
    # It checks that version's files, not the link's: damage v1 and only the pin fails.
    with open(os.path.join(version_dir(dest, "m", v1), "sub", "weights.bin"), "ab") as handle:
        handle.write(b"!")
    damaged = run_cli("verify", "--dest", dest, "--model", f"m@{v1}")
    assert damaged.returncode == 1 and damaged.stderr.strip() == \
        f"m/sub/weights.bin: size 201 but the manifest says 200"
    assert run_cli("verify", "--dest", dest, "--model", f"m@{v2}").returncode == 0
    assert run_cli("verify", "--dest", dest, "--model", "m").returncode == 0


def test_a_pinned_version_missing_from_the_store_is_one_line_and_exit_1(bucket, publish, tmp_path):
    publish("m", marker("v1"))
    dest, out = tmp_path / "models", tmp_path / "view"
    pull(bucket, dest, "m")
    view(out, dest, "flat")
    before = snapshot(out)
    proc = view(out, dest, "flat", "m@0123456789abcdef", check=False)
    assert proc.returncode == 1
    assert_one_line_error(proc, "m@0123456789abcdef is not in", str(dest), "pull it first")
    assert snapshot(out) == before
    verified = run_cli("verify", "--dest", dest, "--model", "m@0123456789abcdef", "--view", out)
    assert verified.returncode == 1
    assert verified.stderr.splitlines() == [
        f"m@0123456789abcdef is not in {dest} (no verified record of that version): pull it "
        "(modelsync pull --model m@0123456789abcdef) or seed the mirror"]
    assert snapshot(out) == before
    missing = view(out, dest, "flat", "nothere", check=False)
    assert missing.returncode == 1 and "nothere is not in" in missing.stderr


# -- errors leave the view untouched ------------------------------------------------------------------------------

def test_a_model_the_layout_cannot_place_is_exit_2_and_leaves_the_view_unchanged(bucket, publish, tmp_path):
    publish("SEG_M2F_GrapheneL", FAMILY_FILES["m2f"])
    publish("paddleocr", PADDLE_FILES)
    dest, out = tmp_path / "models", tmp_path / "view"
    pull(bucket, dest, "SEG_M2F_GrapheneL", "paddleocr")
    view(out, dest, "maskterial", "SEG_M2F_GrapheneL")
    before = snapshot(out)
    proc = view(out, dest, "maskterial", check=False)  # every installed model, paddleocr too
    assert proc.returncode == 2
    assert_one_line_error(proc, "layout 'maskterial' cannot place model 'paddleocr': no rule matches it",
                          "--layout flat")
    assert snapshot(out) == before
    # The same check runs before a pull downloads anything.
    fresh = tmp_path / "fresh"
    proc = pull(bucket, fresh, "paddleocr", extra=("--view", out, "--layout", "maskterial"), check=False)
    assert proc.returncode == 2 and not fresh.exists()
    assert_one_line_error(proc, "cannot place model 'paddleocr'")
    assert snapshot(out) == before


def test_entries_in_the_way_and_bad_directories_are_one_line_errors(bucket, publish, tmp_path):
    publish("alpha", marker("alpha"))
    dest, out = tmp_path / "models", tmp_path / "view"
    pull(bucket, dest, "alpha")
    out.mkdir()
    (out / "alpha").mkdir()  # a real directory where the view wants its link
    (out / "alpha" / "mine").write_text("keep")
    proc = view(out, dest, "flat", check=False)
    assert proc.returncode == 2
    assert_one_line_error(proc, f"{out / 'alpha'} exists and was not made by modelsync", "move it away")
    assert (out / "alpha" / "mine").read_text() == "keep" and not os.path.lexists(out / META / "current")
    (tmp_path / "file").write_text("")
    assert_one_line_error(view(tmp_path / "file", dest, "flat", check=False), "is not a directory")
    assert_one_line_error(view(dest, dest, "flat", check=False), "would be inside the model root")
    assert_one_line_error(view(out, dest, "flat", "alpha", "alpha", check=False), "'alpha' is given twice")
    assert_one_line_error(run_cli("view", "--dest", dest), "no view directory given", "MODELSYNC_VIEW")
    assert_one_line_error(view(out, tmp_path / "empty", "flat", check=False), "no models under")


def test_a_bad_layouts_file_or_layout_name_is_exit_2_before_anything_is_done(bucket, publish, tmp_path):
    publish("alpha", marker("alpha"))
    dest, out = tmp_path / "models", tmp_path / "view"
    bad = tmp_path / "layouts.yaml"
    bad.write_text("layouts:\n  mine:\n    description: d\n    rules:\n      - {match: '[', path: '{name}'}\n")
    proc = pull(bucket, dest, extra=("--view", out, "--layouts", bad), check=False)
    assert proc.returncode == 2 and not dest.exists() and not out.exists()
    assert_one_line_error(proc, f"layouts file {bad}: layouts.mine.rules[0].match: bad regex '['")
    proc = pull(bucket, dest, env={"MODELSYNC_VIEW": str(out), "MODELSYNC_LAYOUT": "maskterrial"}, check=False)
    assert proc.returncode == 2 and not dest.exists()
    assert_one_line_error(proc, "unknown layout 'maskterrial'", "flat, maskterial, paddlex")
    assert_one_line_error(pull(bucket, dest, extra=("--layout", "flat"), check=False), "--layout flat needs a view")
    pull(bucket, dest)
    assert_one_line_error(view(out, dest, "flat", extra=("--layouts", tmp_path / "none.yaml"), check=False),
                          "not found; pass --layouts FILE or set MODELSYNC_LAYOUTS")
    assert not out.exists()
    # Another layouts file, through the environment.
    good = tmp_path / "good.yaml"
    good.write_text("layouts:\n  nested:\n    description: d\n    rules:\n      - {match: '.+', path: 'all/{name}'}\n")
    run_cli("view", out, "--dest", dest, env={"MODELSYNC_LAYOUTS": str(good), "MODELSYNC_LAYOUT": "nested"},
            check=True)
    assert (out / "all" / "alpha" / "marker.txt").read_text() == "alpha"
    listed = run_cli("view", "--list-layouts", check=True).stdout
    assert "maskterial" in listed and "PADDLE_PDX_CACHE_HOME=DIR" in listed


# -- pull / verify --view -------------------------------------------------------------------------------------------

def test_pull_view_builds_the_view_of_exactly_what_it_pulled_and_a_failed_pull_leaves_it(bucket, publish, tmp_path):
    v1 = publish("SEG_M2F_GrapheneL", FAMILY_FILES["m2f"])
    publish("CLS_AMM_GrapheneL", FAMILY_FILES["amm"])
    publish("other", marker("other"))
    dest, out = tmp_path / "models", tmp_path / "view"
    pull(bucket, dest, "other")
    env = {"MODELSYNC_VIEW": str(out), "MODELSYNC_LAYOUT": "maskterial",
           "MODELSYNC_MODELS": "SEG_M2F_GrapheneL,CLS_AMM_GrapheneL"}
    proc = run_cli("pull", "--bucket", bucket, "--dest", dest, env=env, check=True)
    lines = [json.loads(l) for l in proc.stdout.splitlines()]
    assert [l["action"] for l in lines] == ["pull", "view"]  # the view is built after the pull succeeded
    assert sorted(lines[1]["links"]) == ["classification_models/AMM/GrapheneL", "segmentation_models/M2F/GrapheneL"]
    assert lines[1]["models"] == lines[0]["models"]
    assert sorted(os.listdir(out)) == [META, "classification_models", "segmentation_models"]
    before = snapshot(out)

    # A pull that fails (a model missing from the bucket) does not touch the view.
    failed = run_cli("pull", "--bucket", bucket, "--dest", dest, env={**env, "MODELSYNC_MODELS": "SEG_M2F_Nope"})
    assert failed.returncode == 2 and "not found" in failed.stderr
    # Nor does one whose download fails: the version's files were removed from the bucket.
    v2 = publish("SEG_M2F_GrapheneL", {**FAMILY_FILES["m2f"], "model_final.pth": b"new weights"})
    from modelsync.s3 import make_client
    make_client().delete_object(Bucket=bucket, Key=f"models/SEG_M2F_GrapheneL/{v2}/files/model_final.pth")
    broken = run_cli("pull", "--bucket", bucket, "--dest", dest, env=env)
    assert broken.returncode == 1 and "incomplete in the bucket" in broken.stderr
    assert snapshot(out) == before
    assert os.path.realpath(out / "segmentation_models" / "M2F" / "GrapheneL") == \
        version_dir(dest, "SEG_M2F_GrapheneL", v1)


def test_verify_view_builds_only_after_the_models_verify(bucket, publish, tmp_path):
    publish("paddleocr", PADDLE_FILES)
    dest, cache = tmp_path / "models", tmp_path / "paddlex"
    pull(bucket, dest)
    os.unlink(dest / "paddleocr" / "official_models" / "PP-OCRv6_medium_det" / "inference.yml")
    proc = run_cli("verify", "--dest", dest, "--view", cache, "--layout", "paddlex")
    assert proc.returncode == 1 and "inference.yml: missing" in proc.stderr
    assert not os.path.lexists(cache / "official_models") and not os.path.lexists(cache / META)

    pull(bucket, dest)  # repairs the missing file
    proc = run_cli("verify", "--dest", dest, env={"MODELSYNC_VIEW": str(cache), "MODELSYNC_LAYOUT": "paddlex"})
    assert proc.returncode == 0, proc.stderr
    assert summary(proc)["models"] == [f"paddleocr@{os.path.basename(os.path.realpath(dest / 'paddleocr'))}"]
    assert os.path.isfile(cache / "official_models" / "PP-OCRv6_medium_det" / "inference.yml")


def test_the_rules_the_task_definition_carries_win_over_the_layouts_file_in_the_image(bucket, publish, tmp_path):
    """An init container whose image bundles an older layouts file (no `nested` layout, or another meaning of
    `flat`) builds the view from MODELSYNC_LAYOUT_RULES, the rules synth checked and put into the task definition."""
    from modelsync.layouts import load_layouts, load_layouts_text

    publish("alpha", marker("alpha"))
    dest, out = tmp_path / "models", tmp_path / "view"
    old_image = tmp_path / "old-layouts.yaml"  # what an older image would bundle: no such layout
    old_image.write_text("layouts:\n  flat:\n    description: d\n    rules:\n      - {match: '.+', path: 'x/{name}'}\n")
    rules = json.dumps({"layouts": {"nested": {"description": "d", "rules": [{"match": ".+", "path": "all/{name}"}]}}})
    proc = run_cli("pull", "--bucket", bucket, "--dest", dest, env={
        "MODELSYNC_VIEW": str(out), "MODELSYNC_LAYOUT": "nested", "MODELSYNC_LAYOUTS": str(old_image),
        "MODELSYNC_LAYOUT_RULES": rules})
    assert proc.returncode == 0, proc.stderr
    assert (out / "all" / "alpha" / "marker.txt").read_text() == "alpha"
    # Without the rules the old file decides, and does not know the layout: one line, exit 2, nothing built.
    other = tmp_path / "view2"
    proc = run_cli("view", other, "--dest", dest, env={"MODELSYNC_LAYOUT": "nested", "MODELSYNC_LAYOUTS": str(old_image)})
    assert proc.returncode == 2 and not other.exists()
    assert_one_line_error(proc, "unknown layout 'nested'")
    # Bad rules are one line too, naming where they came from.
    proc = run_cli("view", other, "--dest", dest, env={"MODELSYNC_LAYOUT": "x", "MODELSYNC_LAYOUT_RULES": "{"})
    assert proc.returncode == 2
    assert_one_line_error(proc, "--layout-rules / MODELSYNC_LAYOUT_RULES")
    # What the constructs put into the task definition reads back as the same layout, for every bundled layout.
    for name in load_layouts().names():
        layout = load_layouts().get(name)
        assert load_layouts_text(json.dumps(layout.document()), "rules").get(name) == layout
