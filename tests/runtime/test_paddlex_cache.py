"""--paddlex-cache: a writable PaddleX cache home whose official_models is the pulled PaddleOCR model."""

import os

from .helpers import assert_one_line_error, run_cli

PADDLE_FILES = {
    "official_models/PP-OCRv6_medium_det/inference.yml": b"Global:\n  model_name: PP-OCRv6_medium_det\n",
    "official_models/PP-OCRv6_medium_det/inference.pdiparams": b"\x00" * 4096,
}


def test_pull_links_the_paddlex_cache_to_the_pulled_model_and_relinks_on_a_new_version(bucket, publish, tmp_path):
    publish("paddleocr", PADDLE_FILES)
    dest, cache = tmp_path / "models", tmp_path / "paddlex"
    proc = run_cli("pull", "--bucket", bucket, "--dest", dest, "--paddlex-cache", cache, check=True)
    link = cache / "official_models"
    # The resolved version directory, not the switchable dest/paddleocr link (review finding 4).
    v1_dir = os.path.realpath(dest / "paddleocr")
    assert v1_dir.startswith(str(dest / ".modelsync" / "versions" / "paddleocr") + "/")
    assert os.readlink(link) == os.path.join(v1_dir, "official_models")
    assert (link / "PP-OCRv6_medium_det" / "inference.pdiparams").read_bytes() == b"\x00" * 4096
    assert "official_models ->" in proc.stderr

    # A new version switches /models/paddleocr (the seeding task does that under running tasks in
    # efs mode): an app started before keeps reading the version it started with, whole.
    publish("paddleocr", {**PADDLE_FILES, "official_models/PP-OCRv6_medium_det/inference.pdiparams": b"\x01" * 4096})
    run_cli("pull", "--bucket", bucket, "--dest", dest, check=True)
    assert (link / "PP-OCRv6_medium_det" / "inference.pdiparams").read_bytes() == b"\x00" * 4096
    # The next init step (a new task) links the new version, re-creating the link in place (no leftovers).
    run_cli("pull", "--bucket", bucket, "--dest", dest, "--paddlex-cache", cache, check=True)
    assert os.readlink(link) == os.path.join(os.path.realpath(dest / "paddleocr"), "official_models") != \
        os.path.join(v1_dir, "official_models")
    assert (link / "PP-OCRv6_medium_det" / "inference.pdiparams").read_bytes() == b"\x01" * 4096
    assert sorted(os.listdir(cache)) == ["official_models"]


def test_verify_links_only_when_the_models_verify(bucket, publish, tmp_path):
    publish("paddleocr", PADDLE_FILES)
    dest, cache = tmp_path / "models", tmp_path / "paddlex"
    run_cli("pull", "--bucket", bucket, "--dest", dest, check=True)
    os.unlink(dest / "paddleocr" / "official_models" / "PP-OCRv6_medium_det" / "inference.yml")
    assert run_cli("verify", "--dest", dest, "--paddlex-cache", cache).returncode == 1
    assert not os.path.lexists(cache / "official_models")

    run_cli("pull", "--bucket", bucket, "--dest", dest, check=True)  # repairs the missing file
    proc = run_cli("verify", "--dest", dest, env={"MODELSYNC_PADDLEX_CACHE": str(cache)})
    assert proc.returncode == 0, proc.stderr
    assert os.path.isdir(cache / "official_models" / "PP-OCRv6_medium_det")


def test_without_a_paddleocr_model_nothing_is_linked(bucket, publish, tmp_path):
    publish("other", {"model.pth": b"weights"})
    dest, cache = tmp_path / "models", tmp_path / "paddlex"
    proc = run_cli("pull", "--bucket", bucket, "--dest", dest, "--paddlex-cache", cache, check=True)
    assert "nothing to link" in proc.stderr
    assert not os.path.lexists(cache / "official_models")


def test_a_real_directory_in_the_way_is_a_one_line_error_and_is_left_alone(bucket, publish, tmp_path):
    publish("paddleocr", PADDLE_FILES)
    dest, cache = tmp_path / "models", tmp_path / "paddlex"
    (cache / "official_models" / "mine").mkdir(parents=True)
    proc = run_cli("pull", "--bucket", bucket, "--dest", dest, "--paddlex-cache", cache)
    assert_one_line_error(proc, "is a real directory", "MODELSYNC_PADDLEX_CACHE")
    assert (cache / "official_models" / "mine").is_dir()
