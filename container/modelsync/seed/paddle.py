"""PaddleOCR prewarm: build the pipeline once so PaddleX downloads its models into a staging
cache, then check every expected model folder before anything is published.

PaddleX reads PADDLE_PDX_CACHE_HOME at import and treats any existing
`official_models/<name>` folder as a cache hit without checking it, so a crash mid-download on a
shared cache would leave a model later runs accept. Hence: a fresh staging directory, the
variable set before import, and our own check afterwards. The pipeline constructor is injectable
so tests can stand in a factory that writes model folders the way PaddleX does.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import logging
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from modelsync.errors import ModelsyncError
from modelsync.seed.catalog import PaddleOCRSource

log = logging.getLogger(__name__)

PipelineFactory = Callable[..., object]  # called like paddleocr.PaddleOCR(**kwargs)
MODELS_SUBDIR = "official_models"


def paddleocr_factory(pinned_version: str) -> PipelineFactory:
    """The real constructor, refusing a paddleocr other than the catalog's pin (other versions
    load other models) and a paddlex imported before the cache location was set."""

    def build(**kwargs):
        try:
            installed = importlib.metadata.version("paddleocr")
        except importlib.metadata.PackageNotFoundError:
            raise ModelsyncError(
                "paddleocr is not installed here; use the seeding image (container/requirements-paddle.txt) "
                "or leave paddleocr out with --only"
            ) from None
        if installed != pinned_version:
            raise ModelsyncError(
                f"paddleocr {installed} is installed but the catalog pins {pinned_version}; install "
                f"paddleocr=={pinned_version} or change paddleocr_version and expected_models together"
            )
        if "paddlex" in sys.modules:
            raise ModelsyncError(
                "paddlex was imported before PADDLE_PDX_CACHE_HOME was set, so it would download elsewhere; "
                "run the seed in a fresh process"
            )
        from paddleocr import PaddleOCR

        return PaddleOCR(**kwargs)

    return build


@contextlib.contextmanager
def _environ(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


def prewarm(
    source: PaddleOCRSource,
    cache_dir: Path,
    *,
    pipeline_factory: PipelineFactory | None = None,
    label: str = "paddleocr",
) -> Path:
    """Build the pipeline with its cache in the new directory `cache_dir`; check the expected
    model folders; return `cache_dir` (the tree to publish)."""
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True)  # must be fresh: an old folder would count as a cache hit
    factory = pipeline_factory or paddleocr_factory(source.paddleocr_version)
    settings = {
        "PADDLE_PDX_CACHE_HOME": str(cache_dir),
        "PADDLE_PDX_MODEL_SOURCE": source.model_source,
        # Read as a raw string: any non-empty value skips the connectivity probe of every source;
        # we name the source explicitly, so the probe only adds a failure mode.
        "PADDLE_PDX_DISABLE_MODEL_SOURCE_CHECK": "True",
    }
    log.info(
        "%s: building the pipeline (paddleocr %s, %s) into %s",
        label,
        source.paddleocr_version,
        source.pipeline_kwargs(),
        cache_dir,
    )
    with _environ(settings):
        try:
            factory(**source.pipeline_kwargs())
        except ModelsyncError:
            raise
        except Exception as err:  # whatever paddle raises: report it as one line
            detail = (str(err).strip().splitlines() or [""])[0][:300]
            raise ModelsyncError(
                f"{label}: building the PaddleOCR pipeline failed ({type(err).__name__}: {detail}); check "
                f"network access to the model source ({source.model_source}) and the catalog's options"
            ) from None
    check_models(cache_dir, source.expected_models, label=label)
    return cache_dir


def check_models(cache_dir: Path, expected: tuple[str, ...], *, label: str = "paddleocr") -> None:
    """Every expected model folder exists under official_models/ and holds a non-empty file."""
    root = Path(cache_dir) / MODELS_SUBDIR
    present = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    for name in expected:
        folder = root / name
        if name not in present:
            raise ModelsyncError(
                f"{label}: model folder {MODELS_SUBDIR}/{name} is missing after building the pipeline "
                f"(found: {', '.join(present) or 'none'}); make expected_models match what this paddleocr "
                f"version loads with these options"
            )
        if not any(p.is_file() and p.stat().st_size > 0 for p in folder.rglob("*")):
            raise ModelsyncError(
                f"{label}: model folder {MODELS_SUBDIR}/{name} is empty (an interrupted download); re-run the seed"
            )
    extra = sorted(set(present) - set(expected))
    if extra:
        log.warning(
            "%s: the pipeline also loaded %s; they are published too, add them to expected_models",
            label,
            ", ".join(extra),
        )
