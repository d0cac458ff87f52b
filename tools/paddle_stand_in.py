"""A stand-in for paddleocr.PaddleOCR, for runs that cannot reach the internet (`make local`, the tests).

It fills the cache the way PaddleX does: it reads PADDLE_PDX_CACHE_HOME when it runs and writes
<cache>/official_models/<model>/ (inference.yml naming the model, inference.json, inference.pdiparams) for each
model the given options switch on, the paddleocr 3.7 choice (docs/seeding.md). The bytes are made up: a view
built from them has PaddleX's shape, not its weights.

`install(folder, version)` makes `folder` a place to put on PYTHONPATH: a `paddleocr` package and its
`paddleocr-<version>.dist-info`, so `modelsync seed` runs its real prewarm path (version check, staging,
validation, publish) against the stand-in.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

PADDLE_MODELS = (
    "PP-LCNet_x1_0_doc_ori",
    "UVDoc",
    "PP-OCRv6_medium_det",
    "PP-LCNet_x1_0_textline_ori",
    "PP-OCRv6_medium_rec",
)


def models_for(options: dict) -> list[str]:
    """The models paddleocr 3.7 loads for these options (each optional stage defaults to on)."""
    chosen = []
    if options.get("use_doc_orientation_classify", True):
        chosen.append("PP-LCNet_x1_0_doc_ori")
    if options.get("use_doc_unwarping", True):
        chosen.append("UVDoc")
    chosen.append("PP-OCRv6_medium_det")
    if options.get("use_textline_orientation", True):
        chosen.append("PP-LCNet_x1_0_textline_ori")
    chosen.append("PP-OCRv6_medium_rec")
    return chosen


def cache_home() -> Path:
    return Path(os.environ.get("PADDLE_PDX_CACHE_HOME", Path.home() / ".paddlex"))


def write_model(cache: Path, name: str, *, empty: bool = False) -> None:
    folder = cache / "official_models" / name
    folder.mkdir(parents=True, exist_ok=True)
    if empty:
        return
    (folder / "inference.yml").write_text(f"Global:\n  model_name: {name}\n")
    (folder / "inference.json").write_text(json.dumps({"program": name}))
    (folder / "inference.pdiparams").write_bytes(name.encode() * 64)


class PaddleOCR:
    """What `paddleocr.PaddleOCR(**options)` leaves in the cache, without downloading anything."""

    def __init__(self, **options) -> None:
        cache = cache_home()
        for name in models_for(options):
            write_model(cache, name)
        (cache / "temp").mkdir(exist_ok=True)  # PaddleX's scratch, never published


def install(folder: Path, version: str) -> Path:
    """A PYTHONPATH entry whose `paddleocr` is this stand-in, reporting `version` (the catalog's pin)."""
    package = folder / "paddleocr"
    package.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text(
        '"""Stand-in written by tools/paddle_stand_in.py (make local): no internet, no weights."""\n'
        "from tools.paddle_stand_in import PaddleOCR  # noqa: F401\n"
    )
    for old in folder.glob("paddleocr-*.dist-info"):
        if old.name != f"paddleocr-{version}.dist-info":
            for file in old.iterdir():
                file.unlink()
            old.rmdir()
    info = folder / f"paddleocr-{version}.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: paddleocr\nVersion: {version}\n")
    return folder
