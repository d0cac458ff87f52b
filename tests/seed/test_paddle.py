"""PaddleOCR prewarm: the real code path with the pipeline constructor swapped for a factory that
writes model folders the way PaddleX does; the real paddleocr only where it is installed."""

from __future__ import annotations

import importlib.util
import logging
import os
import subprocess
import sys

import pytest

from modelsync.errors import ModelsyncError
from modelsync.seed.catalog import PaddleOCRSource, load_catalog
from modelsync.seed.paddle import paddleocr_factory, prewarm
from tests.seed.fake_paddle import PADDLE_MODELS, FakePaddleOCR

OPTIONS = {"use_doc_orientation_classify": True, "use_doc_unwarping": True, "use_textline_orientation": True}


def source(**changes) -> PaddleOCRSource:
    values = dict(paddleocr_version="3.7.0", lang="es", model_source="huggingface", options=OPTIONS,
                  expected_models=PADDLE_MODELS)
    values.update(changes)
    return PaddleOCRSource(**values)


def test_prewarm_builds_the_pipeline_into_the_staging_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PADDLE_PDX_CACHE_HOME", "/somewhere/else")
    monkeypatch.delenv("PADDLE_PDX_MODEL_SOURCE", raising=False)
    factory = FakePaddleOCR()
    cache = prewarm(source(), tmp_path / "cache", pipeline_factory=factory)

    assert factory.calls == [{"lang": "es", **OPTIONS}]
    assert factory.environ == [{"PADDLE_PDX_CACHE_HOME": str(tmp_path / "cache"), "PADDLE_PDX_MODEL_SOURCE": "huggingface",
                                "PADDLE_PDX_DISABLE_MODEL_SOURCE_CHECK": "True"}]
    assert sorted(p.name for p in (cache / "official_models").iterdir()) == sorted(PADDLE_MODELS)
    # The caller's environment is back as it was.
    assert os.environ["PADDLE_PDX_CACHE_HOME"] == "/somewhere/else"
    assert "PADDLE_PDX_MODEL_SOURCE" not in os.environ


def test_bundled_catalog_options_load_exactly_the_expected_models(tmp_path):
    entry = {e.name: e for e in load_catalog().entries}["paddleocr"]
    prewarm(entry.source, tmp_path / "cache", pipeline_factory=FakePaddleOCR())


def test_option_switched_off_but_still_expected_is_caught(tmp_path):
    with pytest.raises(ModelsyncError, match=r"official_models/UVDoc is missing after building the pipeline "
                                             r"\(found: PP-LCNet_x1_0_doc_ori, .*\); make expected_models match"):
        prewarm(source(options={**OPTIONS, "use_doc_unwarping": False}), tmp_path / "c", pipeline_factory=FakePaddleOCR())


def test_empty_model_folder_is_an_interrupted_download(tmp_path):
    with pytest.raises(ModelsyncError, match=r"official_models/PP-OCRv6_medium_rec is empty .*re-run the seed"):
        prewarm(source(), tmp_path / "c", pipeline_factory=FakePaddleOCR(empty=("PP-OCRv6_medium_rec",)))


def test_unexpected_extra_model_is_kept_and_reported(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="modelsync.seed.paddle"):
        cache = prewarm(source(), tmp_path / "c", pipeline_factory=FakePaddleOCR(extra=("PP-Chart2Table",)))
    assert (cache / "official_models/PP-Chart2Table/inference.pdiparams").is_file()
    assert "also loaded PP-Chart2Table" in caplog.text


def test_pipeline_errors_become_one_line(tmp_path):
    def broken(**kwargs):
        raise RuntimeError("download failed: 403\nTraceback-ish second line")

    with pytest.raises(ModelsyncError) as err:
        prewarm(source(), tmp_path / "c", pipeline_factory=broken)
    assert str(err.value) == ("paddleocr: building the PaddleOCR pipeline failed (RuntimeError: download failed: 403); "
                              "check network access to the model source (huggingface) and the catalog's options")


PADDLE_INSTALLED = importlib.util.find_spec("paddleocr") is not None


@pytest.mark.skipif(PADDLE_INSTALLED, reason="paddleocr is installed here")
def test_real_factory_without_paddleocr_says_what_to_install(tmp_path):
    with pytest.raises(ModelsyncError, match=r"paddleocr is not installed here; use the seeding image"):
        prewarm(source(), tmp_path / "c", pipeline_factory=paddleocr_factory("3.7.0"))


@pytest.mark.skipif(not PADDLE_INSTALLED, reason="paddleocr is not installed (container/requirements-paddle.txt)")
def test_real_paddlex_reads_the_cache_location_we_set(tmp_path):
    # Offline part of the real path: paddlex must take its cache from PADDLE_PDX_CACHE_HOME at import.
    code = "from paddlex.utils.cache import CACHE_DIR; print(CACHE_DIR)"
    env = {**os.environ, "PADDLE_PDX_CACHE_HOME": str(tmp_path), "PADDLE_PDX_DISABLE_MODEL_SOURCE_CHECK": "True"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip().splitlines()[-1] == str(tmp_path)


@pytest.mark.skipif(not PADDLE_INSTALLED, reason="paddleocr is not installed (container/requirements-paddle.txt)")
def test_real_factory_refuses_another_paddleocr_version(tmp_path):
    with pytest.raises(ModelsyncError, match=r"the catalog pins 0\.0\.1; install paddleocr==0\.0\.1"):
        prewarm(source(paddleocr_version="0.0.1"), tmp_path / "c", pipeline_factory=paddleocr_factory("0.0.1"))


# Which models paddleocr 3.7 loads: detection/recognition by language (paddleocr), the document
# and text-line models from PaddleX's OCR pipeline config. Private API, read in a subprocess so
# paddlex is not imported into this process (its cache location is fixed at import).
_MODELS_PADDLEOCR_LOADS = """
import json, sys, yaml
from pathlib import Path
import paddlex
from paddleocr._pipelines.ocr import PaddleOCR
lang, options = sys.argv[1], json.loads(sys.argv[2])
config = yaml.safe_load((Path(paddlex.__file__).parent / "configs/pipelines/OCR.yaml").read_text())
pre = config["SubPipelines"]["DocPreprocessor"]["SubModules"]
models = []
if options.get("use_doc_orientation_classify", True):
    models.append(pre["DocOrientationClassify"]["model_name"])
if options.get("use_doc_unwarping", True):
    models.append(pre["DocUnwarping"]["model_name"])
det, rec = PaddleOCR._get_ocr_model_names(None, lang, None)
models.append(det)
if options.get("use_textline_orientation", True):
    models.append(config["SubModules"]["TextLineOrientation"]["model_name"].strip())
models.append(rec)
print(json.dumps(models))
"""


@pytest.mark.skipif(not PADDLE_INSTALLED, reason="paddleocr is not installed (container/requirements-paddle.txt)")
def test_bundled_expected_models_are_what_the_installed_paddleocr_loads(tmp_path):
    import json

    paddle = {e.name: e for e in load_catalog().entries}["paddleocr"].source
    env = {**os.environ, "PADDLE_PDX_CACHE_HOME": str(tmp_path), "PADDLE_PDX_DISABLE_MODEL_SOURCE_CHECK": "True"}
    out = subprocess.run([sys.executable, "-c", _MODELS_PADDLEOCR_LOADS, paddle.lang, json.dumps(paddle.options)],
                         env=env, capture_output=True, text=True, timeout=300, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == list(paddle.expected_models)
